"""SkyMesh: an open control plane for networks of satellite ground stations and robotic telescopes.

Subpackages: core (domain), astro (orbits and sky), api (wire contracts), server, scheduler, agent, sim, web,
observability, cli. See README.md for the map.
"""

__version__ = "0.1.0"
