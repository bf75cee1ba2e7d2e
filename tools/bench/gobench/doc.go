// Package gobench holds the benchmarks that tools/bench/run.sh compares with
// a PyTorch peer (tools/bench/torch_peer.py) on the same shapes: Sgemm on a
// BERT-base projection and the skinny products of LoRA, one LoRA training
// step of a BERT-base-shaped encoder, and LoRA fine-tuning throughput of
// stories260K. It has no code of its own outside its tests.
package gobench
