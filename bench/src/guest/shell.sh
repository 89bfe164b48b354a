#!/bin/sh
# moat-bench "real programs": a shell script that runs busybox coreutils in a loop.
# Each iteration starts ~15 short-lived processes, uses pipes, and creates, copies,
# renames and removes a few small files in /scratch: what a build or CI step does.
# Usage: shell.sh <iterations>
set -e
n=${1:-10}
d=/scratch/shell.$$
mkdir -p "$d"
i=0
while [ "$i" -lt "$n" ]; do
	seq 1 300 | sort -rn | head -n 50 | wc -l >"$d/count"
	ls -l /bin | grep -c busybox >/dev/null
	echo "the quick brown fox $i" | sed 's/quick/slow/' | tr a-z A-Z | cut -d' ' -f2 >"$d/word"
	cat "$d/count" "$d/word" | md5sum >"$d/sum"
	find /etc /bench -type f | sort >"$d/files"
	cp "$d/word" "$d/word2"
	mv "$d/word2" "$d/word3"
	rm "$d/word3"
	date +%s >/dev/null
	i=$((i + 1))
done
rm -rf "$d"
