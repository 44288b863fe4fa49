#!/bin/sh
echo "built on $(uname -m) by $(id -un) in $(pwd)"
echo "files in the build stage: $(ls | wc -l)"
