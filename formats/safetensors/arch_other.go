//go:build !amd64

package safetensors

// Only amd64 has assembly decoders.
var (
	asmF16  = false
	asmBF16 = false
)

const noAsm = "safetensors: no assembly decoders on this architecture"

func f16ToF32AVX2(dst []float32, src []byte) int    { panic(noAsm) }
func bf16ToF32AVX2(dst []float32, src []byte) int   { panic(noAsm) }
func f16ToF32AVX2NT(dst []float32, src []byte) int  { panic(noAsm) }
func bf16ToF32AVX2NT(dst []float32, src []byte) int { panic(noAsm) }
