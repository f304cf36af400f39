"""Ray Serve: the FastAPI app of :func:`aerec.server.create_app`, served by N replicas behind Serve's HTTP proxy.

Every replica builds the app itself (and so loads the bundle once) when it starts: nothing is
pickled from the driver but the bundle's path and the app's options. Scale with
``serve(..., replicas=N)`` again, or ``serve.run`` of a new application under the same name: Serve
starts the new replicas, moves traffic to them once they are healthy and stops the old ones,
which is also how a new bundle goes live (give its path; the old one answers until then).
"""
from __future__ import annotations

from ._ray import check_bundle, import_ray

__all__ = ["serve"]


def _deployment(serve_api):
    @serve_api.ingress()
    class AerecApp:
        """A replica: the aerec app over one bundle, built on the replica."""

        def __init__(self, bundle: str, options: dict):
            self.bundle, self.options = bundle, options

        def __serve_build_asgi_app__(self):
            from ..server import create_app

            return create_app(self.bundle, **self.options)

    return AerecApp


def serve(bundle, replicas: int = 2, host: str = "127.0.0.1", port: int = 8000, name: str = "aerec",
          route_prefix: str = "/", cpus_per_replica: float = 1, blocking: bool = False, **app_options):
    """Serve a bundle with Ray Serve: ``replicas`` copies of ``aerec.server.create_app(bundle, ...)``.

    Parameters
    ----------
    bundle : path
        A saved recommender, image search or rating model, readable at this path on every node.
    replicas : int
        Replicas of the app; Serve's proxy spreads requests over them.
    host, port : str, int
        Where Serve's HTTP proxy listens (taken only when this call starts Serve; a Serve instance
        already running keeps its own).
    name, route_prefix : str
        The Serve application's name and the path its routes are under.
    cpus_per_replica : float
        CPUs Ray reserves for each replica.
    blocking : bool
        Wait (until interrupted) instead of returning once the replicas are up.
    **app_options
        Passed to :func:`aerec.server.create_app` (``api_key``, ``max_k``, ``via``, ...).

    Returns
    -------
    ray.serve.handle.DeploymentHandle
        The handle of the running application; ``ray.serve.shutdown()`` stops it.
    """
    from ..server import served_kinds

    path = check_bundle(bundle, served_kinds())
    import_ray()
    from ray import serve as serve_api

    serve_api.start(http_options={"host": host, "port": port})
    deployment = serve_api.deployment(_deployment(serve_api), name=name, num_replicas=replicas,
                                      ray_actor_options={"num_cpus": cpus_per_replica})
    return serve_api.run(deployment.bind(str(path), dict(app_options)), name=name, route_prefix=route_prefix,
                         blocking=blocking)

