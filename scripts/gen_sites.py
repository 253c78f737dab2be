#!/usr/bin/env python3
"""Generate a sitemon config with many sites (for benchmarks and load tests).

    scripts/gen_sites.py --count 10000 --interval 10s \
        --url 'http://127.0.0.1:18080/s/{i}' > sites.yaml

Each site gets a distinct name (site-000000 …) and URL ({i} is replaced by its number).
--kafka / --topic / --postgres add those sections so the file is ready for producer/consumer.

With --sites-file PATH the sites go to a file of their own, which the config names with
`sites_file:` (`.csv`: a header row then one site per row; `.yaml`/`.yml`: a list of site
mappings); --format csv|yaml says which (by default the file's extension does). The config is
written to --output (the sites file is then named relative to it) or to stdout (absolute path):

    scripts/gen_sites.py --count 1000000 --interval 100s --sites-file /tmp/b5/sites.csv \
        --output /tmp/b5/sitemon.yaml
"""
import argparse
import csv
import os
import sys

FORMATS = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}


def _name(i, width):
    return f"site-{i:0{width}d}"


def _width(count):
    return max(6, len(str(count)))


def _yaml_str(s):
    return "'" + str(s).replace("'", "''") + "'"


def _site_items(count, interval, timeout, url, site_extra):
    """Yields (name, url, interval, timeout, extra) for every site."""
    width = _width(count)
    for i in range(count):
        yield _name(i, width), url.format(i=i), interval, timeout, site_extra or {}


def render(count, interval, timeout, url, region="bench", kafka=None, topic=None, postgres=None,
           extra="", site_extra=None, sites_file=None):
    """The config text. `site_extra` adds the same keys to every site (e.g. tls_ca_file);
    `sites_file` names a separate site list (see write_sites) instead of an inline `sites:`."""
    out = [f"region: {region}\n"]
    if kafka:
        out.append(f"kafka:\n  bootstrap_servers: '{kafka}'\n  topic: {topic or 'sitemon.checks'}\n")
    if postgres:
        out.append(f"postgres:\n  url: '{postgres}'\n")
    out.append(extra)
    if sites_file:
        out.append(f"sites_file: {_yaml_str(sites_file)}\n")
        return "".join(out)
    out.append("sites:\n")
    for name, u, iv, to, more in _site_items(count, interval, timeout, url, site_extra):
        tail = "".join(f", {k}: {_yaml_str(v)}" for k, v in more.items())
        out.append(f"  - {{name: {name}, url: '{u}', interval: {iv}, timeout: {to}{tail}}}\n")
    return "".join(out)


def sites_format(path, fmt=None):
    ext = os.path.splitext(str(path))[1].lower()
    by_ext = FORMATS.get(ext)
    if fmt and by_ext and fmt != by_ext:
        raise ValueError(f"{path}: a {ext} sites file is read as {by_ext}, not {fmt}")
    if not (fmt or by_ext):
        raise ValueError(f"{path}: name the sites file .csv, .yaml or .yml")
    if not by_ext:
        raise ValueError(f"{path}: sitemon reads a sites file by its extension: use {'.csv' if fmt == 'csv' else '.yaml'}")
    return by_ext


def write_sites(path, count, interval, timeout, url, fmt=None, site_extra=None):
    """Writes the site list alone to `path`, as CSV (header row) or a YAML list of mappings."""
    fmt = sites_format(path, fmt)
    keys = list((site_extra or {}).keys())
    with open(path, "w", newline="") as f:
        if fmt == "csv":
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["name", "url", "interval", "timeout", *keys])
            for name, u, iv, to, more in _site_items(count, interval, timeout, url, site_extra):
                w.writerow([name, u, iv, to, *(more[k] for k in keys)])
        else:
            for name, u, iv, to, more in _site_items(count, interval, timeout, url, site_extra):
                tail = "".join(f", {k}: {_yaml_str(v)}" for k, v in more.items())
                f.write(f"- {{name: {name}, url: '{u}', interval: {iv}, timeout: {to}{tail}}}\n")


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
    p.add_argument("--tls-ca-file", help="tls_ca_file of every site")
    p.add_argument("--sites-file", help="write the sites to this file (.csv or .yaml) and name it in the config")
    p.add_argument("--format", choices=("yaml", "csv"), help="format of --sites-file (default: its extension)")
    p.add_argument("--output", "-o", help="write the config here instead of stdout")
    a = p.parse_args()
    if a.format and not a.sites_file:
        p.error("--format is the format of --sites-file; without it the sites are inline YAML")
    site_extra = {"tls_ca_file": a.tls_ca_file} if a.tls_ca_file else None
    ref = None
    if a.sites_file:
        try:
            write_sites(a.sites_file, a.count, a.interval, a.timeout, a.url, a.format, site_extra)
        except ValueError as e:
            p.error(str(e))
        if a.output:
            ref = os.path.relpath(os.path.abspath(a.sites_file), os.path.dirname(os.path.abspath(a.output)))
        else:
            ref = os.path.abspath(a.sites_file)
    text = render(a.count, a.interval, a.timeout, a.url, a.region, a.kafka, a.topic, a.postgres,
                  site_extra=site_extra, sites_file=ref)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
