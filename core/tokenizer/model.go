package tokenizer

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformedModel reports a tokenizer.model that is not a well-formed
// SentencePiece ModelProto.
var ErrMalformedModel = errors.New("malformed sentencepiece model")

// ErrUnsupportedModel reports a well-formed tokenizer.model whose model type
// or normalization SPM cannot reproduce (a Unigram model, say).
var ErrUnsupportedModel = errors.New("unsupported sentencepiece model")

// Field numbers of sentencepiece_model.proto.
const (
	fieldModelPieces     = 1 // ModelProto.pieces
	fieldModelTrainer    = 2 // ModelProto.trainer_spec
	fieldModelNormalizer = 3 // ModelProto.normalizer_spec

	fieldPiecePiece = 1 // SentencePiece.piece
	fieldPieceScore = 2 // SentencePiece.score
	fieldPieceType  = 3 // SentencePiece.type

	fieldTrainerModelType        = 3  // TrainerSpec.model_type
	fieldTrainerVocabSize        = 4  // TrainerSpec.vocab_size
	fieldTrainerWhitespaceSuffix = 24 // TrainerSpec.treat_whitespace_as_suffix
	fieldTrainerByteFallback     = 35 // TrainerSpec.byte_fallback
	fieldTrainerUnkID            = 40 // TrainerSpec.unk_id
	fieldTrainerBosID            = 41 // TrainerSpec.bos_id
	fieldTrainerEosID            = 42 // TrainerSpec.eos_id
	fieldTrainerPadID            = 43 // TrainerSpec.pad_id
	fieldTrainerUnkPiece         = 45 // TrainerSpec.unk_piece
	fieldTrainerBosPiece         = 46 // TrainerSpec.bos_piece
	fieldTrainerEosPiece         = 47 // TrainerSpec.eos_piece

	fieldNormName             = 1 // NormalizerSpec.name
	fieldNormCharsmap         = 2 // NormalizerSpec.precompiled_charsmap
	fieldNormDummyPrefix      = 3 // NormalizerSpec.add_dummy_prefix
	fieldNormRemoveWhitespace = 4 // NormalizerSpec.remove_extra_whitespaces
	fieldNormEscapeWhitespace = 5 // NormalizerSpec.escape_whitespaces
)

// TrainerSpec.ModelType values.
const (
	modelUnigram = 1
	modelBPE     = 2
	modelWord    = 3
	modelChar    = 4
)

// Vocab returns copies of the vocabulary: the pieces (with '▁' for spaces),
// their scores and their types (TypeNormal ... TypeByte), indexed by id.
func (s *SPM) Vocab() (pieces []string, scores []float32, types []int32) {
	return append([]string(nil), s.pieces...),
		append([]float32(nil), s.scores...),
		append([]int32(nil), s.types...)
}

// DummyPrefix reports whether Encode prepends a space to the text
// (SentencePiece's add_dummy_prefix).
func (s *SPM) DummyPrefix() bool { return s.dummyPrefix }

// MarshalModel serializes the tokenizer as SentencePiece's tokenizer.model (a
// ModelProto of a BPE model), the file sentencepiece and Hugging Face's slow
// LlamaTokenizer load. The normalizer is the identity, as for Llama.
//
// The file must satisfy sentencepiece's loader, so a few types are written
// as it expects: the unknown token as UNKNOWN, BOS and EOS as CONTROL when
// they are normal, and types outside TypeNormal ... TypeByte (GGUF's 0,
// undefined) as NORMAL. Vocabularies sentencepiece would refuse are an
// error: no unknown token, another UNKNOWN piece, empty or duplicate pieces,
// or byte pieces that are not the 256 pieces <0x00> ... <0xFF>.
func (s *SPM) MarshalModel() ([]byte, error) {
	if s.unk < 0 {
		return nil, fmt.Errorf("spm: sentencepiece needs an unknown token and the vocabulary has none")
	}
	seen := make(map[string]int, len(s.pieces))
	bytePieces := 0
	var b []byte
	for i, p := range s.pieces {
		if p == "" {
			return nil, fmt.Errorf("spm: piece %d is empty, which sentencepiece refuses", i)
		}
		if j, dup := seen[p]; dup {
			return nil, fmt.Errorf("spm: pieces %d and %d are both %q, which sentencepiece refuses", j, i, p)
		}
		seen[p] = i
		typ := s.types[i]
		switch {
		case i == s.unk:
			typ = TypeUnknown
		case typ == TypeUnknown:
			return nil, fmt.Errorf("spm: piece %d (%q) is a second unknown token besides %d, which sentencepiece refuses", i, p, s.unk)
		case typ < TypeNormal || typ > TypeByte:
			typ = TypeNormal
		}
		if (i == s.bos || i == s.eos) && typ == TypeNormal {
			typ = TypeControl
		}
		if typ == TypeByte {
			v, _ := parseByteToken(p) // NewSPM checked the form
			if want := fmt.Sprintf("<0x%02X>", v); p != want {
				return nil, fmt.Errorf("spm: byte piece %d is %q; sentencepiece spells it %q", i, p, want)
			}
			bytePieces++
		}
		var m []byte
		m = protowire.AppendTag(m, fieldPiecePiece, protowire.BytesType)
		m = protowire.AppendString(m, p)
		m = protowire.AppendTag(m, fieldPieceScore, protowire.Fixed32Type)
		m = protowire.AppendFixed32(m, math.Float32bits(s.scores[i]))
		m = protowire.AppendTag(m, fieldPieceType, protowire.VarintType)
		m = protowire.AppendVarint(m, uint64(typ))
		b = protowire.AppendTag(b, fieldModelPieces, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	if bytePieces != 0 && bytePieces != 256 {
		return nil, fmt.Errorf("spm: %d byte pieces; sentencepiece needs all 256 or none", bytePieces)
	}
	hasBytes := bytePieces > 0

	var t []byte
	varint := func(num protowire.Number, v uint64) {
		t = protowire.AppendTag(t, num, protowire.VarintType)
		t = protowire.AppendVarint(t, v)
	}
	// int32 fields are sign-extended to 64 bits on the wire.
	int32Field := func(num protowire.Number, v int) { varint(num, uint64(int64(v))) }
	varint(fieldTrainerModelType, modelBPE)
	int32Field(fieldTrainerVocabSize, len(s.pieces))
	varint(fieldTrainerByteFallback, protowire.EncodeBool(hasBytes))
	int32Field(fieldTrainerUnkID, s.unk)
	int32Field(fieldTrainerBosID, s.bos)
	int32Field(fieldTrainerEosID, s.eos)
	int32Field(fieldTrainerPadID, -1)
	// SentencePiece finds the special tokens by these piece names, whose
	// defaults are <unk>, <s> and </s>.
	for _, sp := range []struct {
		num protowire.Number
		id  int
	}{{fieldTrainerUnkPiece, s.unk}, {fieldTrainerBosPiece, s.bos}, {fieldTrainerEosPiece, s.eos}} {
		if sp.id >= 0 {
			t = protowire.AppendTag(t, sp.num, protowire.BytesType)
			t = protowire.AppendString(t, s.pieces[sp.id])
		}
	}
	b = protowire.AppendTag(b, fieldModelTrainer, protowire.BytesType)
	b = protowire.AppendBytes(b, t)

	var n []byte
	n = protowire.AppendTag(n, fieldNormName, protowire.BytesType)
	n = protowire.AppendString(n, "identity")
	n = protowire.AppendTag(n, fieldNormDummyPrefix, protowire.VarintType)
	n = protowire.AppendVarint(n, protowire.EncodeBool(s.dummyPrefix))
	n = protowire.AppendTag(n, fieldNormRemoveWhitespace, protowire.VarintType)
	n = protowire.AppendVarint(n, protowire.EncodeBool(false))
	n = protowire.AppendTag(n, fieldNormEscapeWhitespace, protowire.VarintType)
	n = protowire.AppendVarint(n, protowire.EncodeBool(true))
	b = protowire.AppendTag(b, fieldModelNormalizer, protowire.BytesType)
	b = protowire.AppendBytes(b, n)
	return b, nil
}

// modelProto holds the ModelProto fields ParseModel uses, with the
// defaults sentencepiece_model.proto declares.
type modelProto struct {
	pieces []string
	scores []float32
	types  []int32

	modelType        uint64
	whitespaceSuffix bool
	unk, bos, eos    specialID

	normName         string
	charsmap         int // length of precompiled_charsmap
	dummyPrefix      bool
	removeWhitespace bool
	escapeWhitespace bool
}

// specialID is a special token id of TrainerSpec and whether the file sets
// it (or it is the proto default).
type specialID struct {
	v   int32
	set bool
}

// ParseModel reads SentencePiece's tokenizer.model (a serialized ModelProto)
// into an SPM. Only BPE models are supported, with the normalization SPM
// reproduces: no precompiled normalization rules, whitespace escaped as '▁'
// and not collapsed, and add_dummy_prefix either way. Errors wrap
// ErrMalformedModel or ErrUnsupportedModel.
func ParseModel(data []byte) (*SPM, error) {
	m := modelProto{
		modelType:        modelUnigram,
		unk:              specialID{v: 0},
		bos:              specialID{v: 1},
		eos:              specialID{v: 2},
		dummyPrefix:      true,
		removeWhitespace: true,
		escapeWhitespace: true,
	}
	err := walk(data, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch num {
		case fieldModelPieces:
			if typ != protowire.BytesType {
				return wireTypeError("pieces", typ)
			}
			if err := m.parsePiece(v); err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
		case fieldModelTrainer:
			if typ != protowire.BytesType {
				return wireTypeError("trainer_spec", typ)
			}
			if err := m.parseTrainer(v); err != nil {
				return fmt.Errorf("trainer_spec: %w", err)
			}
		case fieldModelNormalizer:
			if typ != protowire.BytesType {
				return wireTypeError("normalizer_spec", typ)
			}
			if err := m.parseNormalizer(v); err != nil {
				return fmt.Errorf("normalizer_spec: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spm: %w", err)
	}
	return m.build()
}

// build checks what SPM cannot reproduce and makes the tokenizer.
func (m *modelProto) build() (*SPM, error) {
	if len(m.pieces) == 0 {
		return nil, fmt.Errorf("spm: %w: no pieces", ErrMalformedModel)
	}
	switch m.modelType {
	case modelBPE:
	case modelUnigram:
		return nil, fmt.Errorf("spm: %w: a Unigram model (model_type UNIGRAM, the default when unset); only BPE models are supported", ErrUnsupportedModel)
	case modelWord, modelChar:
		return nil, fmt.Errorf("spm: %w: model_type %d (WORD or CHAR); only BPE models are supported", ErrUnsupportedModel, m.modelType)
	default:
		return nil, fmt.Errorf("spm: %w: unknown model_type %d", ErrMalformedModel, m.modelType)
	}
	switch {
	case m.whitespaceSuffix:
		return nil, fmt.Errorf("spm: %w: treat_whitespace_as_suffix is set", ErrUnsupportedModel)
	case m.charsmap > 0:
		return nil, fmt.Errorf("spm: %w: normalizer %q has precompiled rules; only the identity normalizer is supported", ErrUnsupportedModel, m.normName)
	case m.removeWhitespace:
		return nil, fmt.Errorf("spm: %w: remove_extra_whitespaces is set (the default when unset)", ErrUnsupportedModel)
	case !m.escapeWhitespace:
		return nil, fmt.Errorf("spm: %w: escape_whitespaces is off", ErrUnsupportedModel)
	}
	n := len(m.pieces)
	seen := make(map[string]int, n)
	for i, p := range m.pieces {
		if j, dup := seen[p]; dup {
			return nil, fmt.Errorf("spm: %w: pieces %d and %d are both %q", ErrMalformedModel, j, i, p)
		}
		seen[p] = i
	}
	var ids [3]int
	for k, id := range []struct {
		name string
		specialID
	}{{"unk_id", m.unk}, {"bos_id", m.bos}, {"eos_id", m.eos}} {
		switch {
		case id.v >= -1 && int(id.v) < n:
			ids[k] = int(id.v)
		case !id.set:
			ids[k] = -1 // a default id the vocabulary is too small for
		default:
			return nil, fmt.Errorf("spm: %w: %s %d outside the vocabulary of %d pieces", ErrMalformedModel, id.name, id.v, n)
		}
	}
	s, err := NewSPM(m.pieces, m.scores, m.types, ids[1], ids[2], ids[0], WithDummyPrefix(m.dummyPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedModel, err)
	}
	return s, nil
}

func (m *modelProto) parsePiece(data []byte) error {
	piece, score, typ := "", float32(0), int32(TypeNormal)
	hasPiece := false
	err := walk(data, func(num protowire.Number, wt protowire.Type, v []byte, x uint64) error {
		switch num {
		case fieldPiecePiece:
			if wt != protowire.BytesType {
				return wireTypeError("piece", wt)
			}
			piece, hasPiece = string(v), true
		case fieldPieceScore:
			if wt != protowire.Fixed32Type {
				return wireTypeError("score", wt)
			}
			score = math.Float32frombits(uint32(x))
		case fieldPieceType:
			if wt != protowire.VarintType {
				return wireTypeError("type", wt)
			}
			if x < TypeNormal || x > TypeByte {
				return fmt.Errorf("%w: unknown type %d", ErrMalformedModel, x)
			}
			typ = int32(x)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !hasPiece || piece == "" {
		return fmt.Errorf("%w: empty piece", ErrMalformedModel)
	}
	m.pieces = append(m.pieces, piece)
	m.scores = append(m.scores, score)
	m.types = append(m.types, typ)
	return nil
}

func (m *modelProto) parseTrainer(data []byte) error {
	return walk(data, func(num protowire.Number, wt protowire.Type, v []byte, x uint64) error {
		var dst *specialID
		switch num {
		case fieldTrainerModelType:
			if wt != protowire.VarintType {
				return wireTypeError("model_type", wt)
			}
			m.modelType = x
		case fieldTrainerWhitespaceSuffix:
			if wt != protowire.VarintType {
				return wireTypeError("treat_whitespace_as_suffix", wt)
			}
			m.whitespaceSuffix = protowire.DecodeBool(x)
		case fieldTrainerUnkID:
			dst = &m.unk
		case fieldTrainerBosID:
			dst = &m.bos
		case fieldTrainerEosID:
			dst = &m.eos
		}
		if dst != nil {
			if wt != protowire.VarintType {
				return wireTypeError(fmt.Sprintf("field %d", num), wt)
			}
			*dst = specialID{v: int32(x), set: true} // int32 fields are truncated, as protobuf does
		}
		return nil
	})
}

func (m *modelProto) parseNormalizer(data []byte) error {
	return walk(data, func(num protowire.Number, wt protowire.Type, v []byte, x uint64) error {
		var dst *bool
		switch num {
		case fieldNormName:
			if wt != protowire.BytesType {
				return wireTypeError("name", wt)
			}
			m.normName = string(v)
		case fieldNormCharsmap:
			if wt != protowire.BytesType {
				return wireTypeError("precompiled_charsmap", wt)
			}
			m.charsmap = len(v)
		case fieldNormDummyPrefix:
			dst = &m.dummyPrefix
		case fieldNormRemoveWhitespace:
			dst = &m.removeWhitespace
		case fieldNormEscapeWhitespace:
			dst = &m.escapeWhitespace
		}
		if dst != nil {
			if wt != protowire.VarintType {
				return wireTypeError(fmt.Sprintf("field %d", num), wt)
			}
			*dst = protowire.DecodeBool(x)
		}
		return nil
	})
}

// walk calls fn for every field of the message in data: v holds the
// payload of length-delimited fields, x the value of varint and fixed
// fields. Groups and unknown fields are skipped.
func walk(data []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for off := 0; off < len(data); {
		num, typ, n := protowire.ConsumeTag(data[off:])
		if n < 0 {
			return fmt.Errorf("%w: at byte %d: %w", ErrMalformedModel, off, protowire.ParseError(n))
		}
		start := off
		off += n
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(data[off:])
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(data[off:])
			x = uint64(u)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(data[off:])
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(data[off:])
		default:
			n = protowire.ConsumeFieldValue(num, typ, data[off:])
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d at byte %d: %w", ErrMalformedModel, num, start, protowire.ParseError(n))
		}
		off += n
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func wireTypeError(field string, typ protowire.Type) error {
	return fmt.Errorf("%w: %s has wire type %d", ErrMalformedModel, field, typ)
}
