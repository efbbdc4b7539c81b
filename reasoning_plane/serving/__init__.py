"""Serving (Layer 2B at request time), the decision core's part: plain data and pure functions.

memory     what a loaded model takes (weights, KV cache, runtime) and what a node can give
endpoints  request-time placement: endpoints serving a model as candidates of the rule engine
planner    model residency: which model is loaded, sleeping or cold on which node, and why
planner_config  the planner's file (config/serving_nodes.yaml)
"""
