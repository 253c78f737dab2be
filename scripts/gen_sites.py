#!/usr/bin/env python3
"""Generate a sitemon config with many sites (for benchmarks and load tests).

    scripts/gen_sites.py --count 10000 --interval 10s \
        --url 'http://127.0.0.1:18080/s/{i}' > sites.yaml

Each site gets a distinct name (site-000000 …) and URL ({i} is replaced by its number).
--kafka / --topic / --postgres add those sections so the file is ready for producer/consumer.
"""
import argparse
import sys


def render(count, interval, timeout, url, region="bench", kafka=None, topic=None, postgres=None,
           extra=""):
    out = [f"region: {region}\n"]
    if kafka:
        out.append(f"kafka:\n  bootstrap_servers: '{kafka}'\n  topic: {topic or 'sitemon.checks'}\n")
    if postgres:
        out.append(f"postgres:\n  url: '{postgres}'\n")
    out.append(extra)
    out.append("sites:\n")
    width = max(6, len(str(count)))
    for i in range(count):
        out.append(f"  - {{name: site-{i:0{width}d}, url: '{url.format(i=i)}', "
                   f"interval: {interval}, timeout: {timeout}}}\n")
    return "".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--interval", default="30s")
    p.add_argument("--timeout", default="5s")
    p.add_argument("--url", default="http://127.0.0.1:18080/s/{i}")
    p.add_argument("--region", default="bench")
    p.add_argument("--kafka")
    p.add_argument("--topic")
    p.add_argument("--postgres")
    a = p.parse_args()
    sys.stdout.write(render(a.count, a.interval, a.timeout, a.url, a.region, a.kafka, a.topic, a.postgres))


if __name__ == "__main__":
    main()
