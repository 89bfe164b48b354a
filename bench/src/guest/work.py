"""moat-bench "real programs": a Python workload from a Debian root filesystem.

A mix of what Python services spend time on: interpreter work (JSON, regular
expressions, sorting, hashing), small files in /tmp, and path lookups and
directory reads in the standard library (which a gofer-based sandbox serves
over its file protocol). Prints a checksum line so a broken run is visible.
"""
import hashlib
import json
import os
import re
import tempfile


def interpreter_work():
    records = [{"id": i, "name": f"item-{i}", "tags": [str(i % 7), str(i % 11)]} for i in range(20000)]
    blob = json.dumps(records)
    assert len(json.loads(blob)) == len(records)
    ids = re.findall(r"item-(\d+)", blob)
    ids.sort(key=lambda s: (len(s), s))
    return hashlib.sha256(blob.encode()).hexdigest()


def small_files(digest):
    root = tempfile.mkdtemp(dir="/tmp")
    for i in range(300):
        with open(os.path.join(root, f"f{i}"), "w") as f:
            f.write(digest * 16)
    total = 0
    for name in os.listdir(root):
        path = os.path.join(root, name)
        total += os.stat(path).st_size
        with open(path) as f:
            f.read()
        os.unlink(path)
    os.rmdir(root)
    return total


def walk_stdlib():
    count = 0
    for _, _, files in os.walk(os.path.dirname(os.__file__)):
        count += len(files)
    import email.parser, http.client, decimal, argparse, unittest  # noqa: F401,E401
    return count


def main():
    digest = interpreter_work()
    total = small_files(digest)
    files = walk_stdlib()
    print(f"ok {digest[:12]} {total} {files}")


main()
