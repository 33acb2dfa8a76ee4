"""sunsim: a discrete-event simulator and capacity planner for multi-LLM,
prefill/decode-disaggregated serving.

It compares conventional per-model disaggregation (``partitioned``) with SUN's shared
decode pool (``sun``) and its low-bit variant (``qsun``); see SUN, arXiv 2603.02599.
"""

__version__ = "0.1.0"
