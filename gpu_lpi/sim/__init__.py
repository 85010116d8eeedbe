"""Event-driven maker-execution simulation (spec §5, §8.5–8.6, §9.2; DESIGN.md §4 step 8).

* :mod:`gpu_lpi.sim.params` -- the ``[sim]`` table: scenario settings and grids.
* :mod:`gpu_lpi.sim.market` -- event windows around activations from the tick store.
* :mod:`gpu_lpi.sim.engine` -- the kernel launch (:mod:`kernels.maker_sim`).
* :mod:`gpu_lpi.sim.scripted` -- a given order list through the fill engine.
"""
