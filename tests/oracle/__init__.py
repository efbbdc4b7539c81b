"""The specification of placement, one candidate at a time: the test oracle.

`constraints.py` (every rule of one candidate), `cost.py` (the cost model of one candidate) and
`reference.py` (decisions made from them, every request re-evaluated in full) are written
plainly and independently of the engine (`reasoning_plane.rules`, `reasoning_plane.index`).
The property tests compare the engine with them on thousands of random worlds. Production never
imports from here.
"""
