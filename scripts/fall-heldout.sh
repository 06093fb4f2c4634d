#!/bin/sh
# Makes a folder of links to the SisFall subjects the shipped fall detector was NOT tuned on,
# so `vigil fall-eval --data OUT` scores held-out subjects only.
# Usage: scripts/fall-heldout.sh UNPACKED_TRAIN_DIR OUT_DIR
set -eu
src=$(cd "$1" && pwd)
out="$2"
tuned="SA01 SA02 SA03 SA04 SA05 SA06 SA07 SA08 SA09 SA10 SE01 SE02 SE03 SE04 SE06"
mkdir -p "$out"
for dir in "$src"/*/; do
    subject=$(basename "$dir")
    case " $tuned " in
        *" $subject "*) ;;
        *) ln -sfn "$src/$subject" "$out/$subject" ;;
    esac
done
ls "$out"
