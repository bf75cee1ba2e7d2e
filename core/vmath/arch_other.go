//go:build !amd64

package vmath

// hasAsm is false: only amd64 has assembly kernels.
const hasAsm = false

func expAVX2(dst, src []float32)                           { panic(noAsm) }
func expSumAVX2(dst, src []float32, shift float32) float32 { panic(noAsm) }
func maxAVX2(x []float32) float32                          { panic(noAsm) }
func scaleAVX2(x []float32, a float32)                     { panic(noAsm) }
func sigmoidAVX2(dst, src []float32)                       { panic(noAsm) }
func geluAVX2(dst, src []float32)                          { panic(noAsm) }
func geluGradAVX2(dst, x, gy []float32)                    { panic(noAsm) }

const noAsm = "vmath: no assembly kernels on this architecture"

func softmaxGradAVX2(d, p []float32, dot, scale float32) { panic(noAsm) }
func swigluGradAVX2(gg, gu, gate, up, sig, dy []float32) { panic(noAsm) }
