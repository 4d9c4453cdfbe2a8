#!/usr/bin/env bash
# reference.strategy=precomputed with a sharded model (model.safetensors.index.json + shards):
# changing one shard's weights in place gives a new cache key, never the stale cached log-probs.
source "$(dirname "$0")/common.sh"
model="$WORK/sharded"
mkdir -p "$model"
cp "$DATA/models/gpt2/config.json" "$model/"
src="$DATA/models/gpt2/model.safetensors"
# Two shards, each a copy of the single file (a shard may hold tensors the index places elsewhere);
# the index puts the first half of the tensor names in shard 1 and the rest in shard 2.
cp "$src" "$model/model-00001-of-00002.safetensors"
cp "$src" "$model/model-00002-of-00002.safetensors"
header_len=$(od -An -t u8 -j 0 -N 8 "$src" | tr -d ' ')
mapfile -t names < <(dd if="$src" bs=1 skip=8 count="$header_len" 2>/dev/null | grep -o '"[^"]*":{"dtype"' | cut -d'"' -f2)
[ "${#names[@]}" -gt 2 ] || fail "could not read the tensor names of $src"
{
  printf '{"metadata": {}, "weight_map": {'
  for i in "${!names[@]}"; do
    shard=1; [ "$i" -ge $(( ${#names[@]} / 2 )) ] && shard=2
    [ "$i" -gt 0 ] && printf ', '
    printf '"%s": "model-0000%d-of-00002.safetensors"' "${names[$i]}" "$shard"
  done
  printf '}}\n'
} > "$model/model.safetensors.index.json"
run() {  # run NAME: one step with precomputed reference log-probs cached in $WORK/cache
  "$PREFOPT" train --set model="$model" --set data.train="$DATA/cli/pairs_tokenized.jsonl" --set reference.strategy=precomputed \
    --set reference.cache_dir="$WORK/cache" --set training.max_steps=1 --set training.batch_size=4 \
    --set output.dir="$WORK/$1" --set output.tensorboard=false 2> "$WORK/$1.log" || { cat "$WORK/$1.log"; fail "$1 failed"; }
}
run first
[ "$(ls "$WORK/cache" | wc -l)" -eq 1 ] || fail "expected one cache file"
run again
[ "$(ls "$WORK/cache" | wc -l)" -eq 1 ] || fail "the same model and data did not reuse the cache"
# change shard 2's weights in place: its last 4 bytes (the end of the last tensor's data) become 1.0f
size=$(stat -c %s "$model/model-00002-of-00002.safetensors")
printf '\x00\x00\x80\x3f' | dd of="$model/model-00002-of-00002.safetensors" bs=1 seek=$((size - 4)) conv=notrunc 2>/dev/null
run changed
[ "$(ls "$WORK/cache" | wc -l)" -eq 2 ] || fail "a shard changed in place reused the stale cache"
echo "reference cache (sharded model): ok"
