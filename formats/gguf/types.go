package gguf

import (
	"fmt"

	"github.com/surgeon-ml/surgeon/core/tensor"
)

// GGMLType is a ggml tensor element type as stored in a GGUF tensor info.
type GGMLType uint32

// The ggml tensor types. Ids 4, 5, 31-33 and 36-38 were used by types that
// ggml has since removed; files using them are rejected.
const (
	TypeF32     GGMLType = 0
	TypeF16     GGMLType = 1
	TypeQ4_0    GGMLType = 2
	TypeQ4_1    GGMLType = 3
	TypeQ5_0    GGMLType = 6
	TypeQ5_1    GGMLType = 7
	TypeQ8_0    GGMLType = 8
	TypeQ8_1    GGMLType = 9
	TypeQ2_K    GGMLType = 10
	TypeQ3_K    GGMLType = 11
	TypeQ4_K    GGMLType = 12
	TypeQ5_K    GGMLType = 13
	TypeQ6_K    GGMLType = 14
	TypeQ8_K    GGMLType = 15
	TypeIQ2_XXS GGMLType = 16
	TypeIQ2_XS  GGMLType = 17
	TypeIQ3_XXS GGMLType = 18
	TypeIQ1_S   GGMLType = 19
	TypeIQ4_NL  GGMLType = 20
	TypeIQ3_S   GGMLType = 21
	TypeIQ2_S   GGMLType = 22
	TypeIQ4_XS  GGMLType = 23
	TypeI8      GGMLType = 24
	TypeI16     GGMLType = 25
	TypeI32     GGMLType = 26
	TypeI64     GGMLType = 27
	TypeF64     GGMLType = 28
	TypeIQ1_M   GGMLType = 29
	TypeBF16    GGMLType = 30
	TypeTQ1_0   GGMLType = 34
	TypeTQ2_0   GGMLType = 35
	TypeMXFP4   GGMLType = 39
)

// typeTraits describes the storage of one ggml type: elements per block and
// bytes per block. Quantized types store blockSize elements in blockBytes.
type typeTraits struct {
	name       string
	blockSize  uint64
	blockBytes uint64
	quantized  bool
	dtype      tensor.DType // neutral dtype for plain types, Unknown otherwise
}

var ggmlTypes = map[GGMLType]typeTraits{
	TypeF32:     {"F32", 1, 4, false, tensor.F32},
	TypeF16:     {"F16", 1, 2, false, tensor.F16},
	TypeQ4_0:    {"Q4_0", 32, 18, true, tensor.Unknown},
	TypeQ4_1:    {"Q4_1", 32, 20, true, tensor.Unknown},
	TypeQ5_0:    {"Q5_0", 32, 22, true, tensor.Unknown},
	TypeQ5_1:    {"Q5_1", 32, 24, true, tensor.Unknown},
	TypeQ8_0:    {"Q8_0", 32, 34, true, tensor.Unknown},
	TypeQ8_1:    {"Q8_1", 32, 36, true, tensor.Unknown},
	TypeQ2_K:    {"Q2_K", 256, 84, true, tensor.Unknown},
	TypeQ3_K:    {"Q3_K", 256, 110, true, tensor.Unknown},
	TypeQ4_K:    {"Q4_K", 256, 144, true, tensor.Unknown},
	TypeQ5_K:    {"Q5_K", 256, 176, true, tensor.Unknown},
	TypeQ6_K:    {"Q6_K", 256, 210, true, tensor.Unknown},
	TypeQ8_K:    {"Q8_K", 256, 292, true, tensor.Unknown},
	TypeIQ2_XXS: {"IQ2_XXS", 256, 66, true, tensor.Unknown},
	TypeIQ2_XS:  {"IQ2_XS", 256, 74, true, tensor.Unknown},
	TypeIQ3_XXS: {"IQ3_XXS", 256, 98, true, tensor.Unknown},
	TypeIQ1_S:   {"IQ1_S", 256, 50, true, tensor.Unknown},
	TypeIQ4_NL:  {"IQ4_NL", 32, 18, true, tensor.Unknown},
	TypeIQ3_S:   {"IQ3_S", 256, 110, true, tensor.Unknown},
	TypeIQ2_S:   {"IQ2_S", 256, 82, true, tensor.Unknown},
	TypeIQ4_XS:  {"IQ4_XS", 256, 136, true, tensor.Unknown},
	TypeI8:      {"I8", 1, 1, false, tensor.I8},
	TypeI16:     {"I16", 1, 2, false, tensor.I16},
	TypeI32:     {"I32", 1, 4, false, tensor.I32},
	TypeI64:     {"I64", 1, 8, false, tensor.I64},
	TypeF64:     {"F64", 1, 8, false, tensor.F64},
	TypeIQ1_M:   {"IQ1_M", 256, 56, true, tensor.Unknown},
	TypeBF16:    {"BF16", 1, 2, false, tensor.BF16},
	TypeTQ1_0:   {"TQ1_0", 256, 54, true, tensor.Unknown},
	TypeTQ2_0:   {"TQ2_0", 256, 66, true, tensor.Unknown},
	TypeMXFP4:   {"MXFP4", 32, 17, true, tensor.Unknown},
}

// removedTypes names type ids that ggml once used and has since dropped.
var removedTypes = map[GGMLType]string{
	4:  "Q4_2",
	5:  "Q4_3",
	31: "Q4_0_4_4",
	32: "Q4_0_4_8",
	33: "Q4_0_8_8",
	36: "IQ4_NL_4_4",
	37: "IQ4_NL_4_8",
	38: "IQ4_NL_8_8",
}

// String returns the ggml name of the type, such as "Q4_K", or
// "GGMLType(N)" for ids this package does not know.
func (t GGMLType) String() string {
	if tr, ok := ggmlTypes[t]; ok {
		return tr.name
	}
	if name, ok := removedTypes[t]; ok {
		return name
	}
	return fmt.Sprintf("GGMLType(%d)", uint32(t))
}

// Known reports whether the type is one this package can size, so that byte
// ranges of tensors of this type can be validated.
func (t GGMLType) Known() bool { _, ok := ggmlTypes[t]; return ok }

// Quantized reports whether the type is a block-quantized ggml type.
func (t GGMLType) Quantized() bool { return ggmlTypes[t].quantized }

// BlockSize returns the number of elements in one storage block (1 for plain
// types), or 0 for unknown types.
func (t GGMLType) BlockSize() int { return int(ggmlTypes[t].blockSize) }

// BlockBytes returns the number of bytes of one storage block, or 0 for
// unknown types.
func (t GGMLType) BlockBytes() int { return int(ggmlTypes[t].blockBytes) }

// DType returns the neutral dtype of a plain (non-quantized) type, or
// tensor.Unknown for quantized and unknown types.
func (t GGMLType) DType() tensor.DType { return ggmlTypes[t].dtype }
