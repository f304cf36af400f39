"""aerec past one machine, on Ray: batch recommendations and image embedding as Ray Data jobs, a bundle
served by Ray Serve replicas, a Keras recommender trained across workers.

Ray is an optional extra (``pip install "aerec[ray]"``) and is imported only when one of these
functions runs: ``import aerec`` and ``import aerec.distributed`` do not start it. Every function
connects to the Ray cluster of the process (``ray.init()`` already called, or ``RAY_ADDRESS``), or
starts a local one, so the same code runs on a laptop and on a cluster.
"""
from .batch import embed_images, index_from_shards, recommend_batch
from .serve import serve
from .training import fit

__all__ = ["recommend_batch", "embed_images", "index_from_shards", "serve", "fit"]
