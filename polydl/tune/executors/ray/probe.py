"""``python -m polydl.tune.executors.ray.probe ADDRESS``: join the Ray cluster at ADDRESS and
print its resources (the child process that tells whether a cluster answers in time)."""
from __future__ import annotations

import json
import logging
import sys


def main(address: str) -> int:
    import ray

    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    print(json.dumps(ray.cluster_resources()), flush=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2:
        sys.exit(main(sys.argv[1]))
    sys.exit("usage: python -m polydl.tune.executors.ray.probe ADDRESS")
