#!/usr/bin/env bash
# Print a usable interpreter for Python version $1 (e.g. 3.10):
# python3.X on PATH if it runs, else pyenv's copy, else the bare version
# string so that uv downloads a managed Python (needs internet).
set -u
v="$1"
if command -v "python$v" >/dev/null 2>&1 && "python$v" -c 'import sys' >/dev/null 2>&1; then
  command -v "python$v"; exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  prefix=$(pyenv prefix "$v" 2>/dev/null | head -n 1)
  if [ -n "$prefix" ] && [ -x "$prefix/bin/python$v" ]; then
    echo "$prefix/bin/python$v"; exit 0
  fi
fi
for d in "$HOME"/.pyenv/versions/"$v"*; do
  if [ -x "$d/bin/python$v" ]; then echo "$d/bin/python$v"; exit 0; fi
done
echo "$v"
