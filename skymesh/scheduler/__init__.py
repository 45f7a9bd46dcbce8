"""Scheduler: visibility, planning (greedy, LP-guided CP-SAT, exact HiGHS, rolling horizon), explanations, ranked
lists, gRPC service.

Layers, each importing only the ones below it:

- `kernel` (Request, Resource, Opportunity, Problem, Plan): knows nothing about telescopes;
  `greedy`, `bounds`, `lagrange`, `cliques`, `cpmodel`, `improve`, `lpguided`, `exact`, `cpsat`, `rolling`,
  `explain` plan and explain kernel problems (slews from `skymesh.core.rotator`);
- `visibility` (satellite passes), `sky` (celestial targets) and `opportunities` map stations, targets, windows and
  frozen jobs onto a kernel problem; `planning.compute_plan` runs one call end to end; `rank` serves ranked lists;
- `pages` cuts explanations into API pages; `scenario` reads, writes and generates scenario files; `wire` converts
  to and from `skymesh.api.scheduler.v1`;
  `service` is the gRPC servicer and `serve()`.

Importing this package stays light (no grpc, no OR-Tools): import the submodules you need.
Must never import skymesh.server, skymesh.agent or skymesh.web (import-linter).
"""

from __future__ import annotations

__all__: list[str] = []
