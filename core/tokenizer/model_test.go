package tokenizer

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// byteVocab is a small vocabulary with the 256 byte pieces sentencepiece
// wants for byte fallback.
func byteVocab(t testing.TB, opts ...Option) *SPM {
	t.Helper()
	pieces := []string{"<unk>", "<s>", "</s>"}
	types := []int32{TypeUnknown, TypeControl, TypeControl}
	for b := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
		types = append(types, TypeByte)
	}
	for _, p := range []string{"▁", "a", "b", "c", "ab", "bc", "▁a", "▁ab", "abc", "▁abc", "é", "▁b"} {
		pieces = append(pieces, p)
		types = append(types, TypeNormal)
	}
	scores := make([]float32, len(pieces))
	for i := range scores {
		scores[i] = -float32(i) / 4
	}
	s, err := NewSPM(pieces, scores, types, 1, 2, 0, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestModelRoundTrip(t *testing.T) {
	for _, prefix := range []bool{true, false} {
		t.Run(fmt.Sprintf("dummy prefix %v", prefix), func(t *testing.T) {
			s := byteVocab(t, WithDummyPrefix(prefix))
			data, err := s.MarshalModel()
			if err != nil {
				t.Fatal(err)
			}
			r, err := ParseModel(data)
			if err != nil {
				t.Fatal(err)
			}
			p1, s1, t1 := s.Vocab()
			p2, s2, t2 := r.Vocab()
			if !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(s1, s2) || !reflect.DeepEqual(t1, t2) {
				t.Fatal("vocabulary changed in the round trip")
			}
			if r.BOS() != 1 || r.EOS() != 2 || r.UNK() != 0 || r.DummyPrefix() != prefix {
				t.Fatalf("bos %d eos %d unk %d prefix %v", r.BOS(), r.EOS(), r.UNK(), r.DummyPrefix())
			}
			for _, text := range []string{"abc ab", " b a", "xyz é 日本"} {
				if a, b := s.Encode(text, true), r.Encode(text, true); !reflect.DeepEqual(a, b) {
					t.Fatalf("Encode(%q): %v before, %v after", text, a, b)
				}
			}
		})
	}
}

// TestMarshalModelFields checks the fields sentencepiece and transformers
// read, decoded independently of ParseModel.
func TestMarshalModelFields(t *testing.T) {
	data, err := byteVocab(t).MarshalModel()
	if err != nil {
		t.Fatal(err)
	}
	top := fields(t, data)
	if n := len(top[fieldModelPieces]); n != 256+3+12 {
		t.Fatalf("%d pieces", n)
	}
	first := fields(t, top[fieldModelPieces][0].([]byte))
	if string(first[fieldPiecePiece][0].([]byte)) != "<unk>" || first[fieldPieceType][0] != uint64(TypeUnknown) {
		t.Fatalf("piece 0 is %v", first)
	}
	trainer := fields(t, top[fieldModelTrainer][0].([]byte))
	for num, want := range map[protowire.Number]any{
		fieldTrainerModelType:    uint64(modelBPE),
		fieldTrainerVocabSize:    uint64(271),
		fieldTrainerByteFallback: uint64(1),
		fieldTrainerUnkID:        uint64(0),
		fieldTrainerBosID:        uint64(1),
		fieldTrainerEosID:        uint64(2),
		fieldTrainerPadID:        uint64(math.MaxUint64), // -1
		fieldTrainerBosPiece:     []byte("<s>"),
	} {
		if got := trainer[num]; len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("trainer_spec field %d: %v, want %v", num, got, want)
		}
	}
	norm := fields(t, top[fieldModelNormalizer][0].([]byte))
	for num, want := range map[protowire.Number]any{
		fieldNormName:             []byte("identity"),
		fieldNormDummyPrefix:      uint64(1),
		fieldNormRemoveWhitespace: uint64(0),
		fieldNormEscapeWhitespace: uint64(1),
	} {
		if got := norm[num]; len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("normalizer_spec field %d: %v, want %v", num, got, want)
		}
	}
}

// fields decodes one message level: field number -> values ([]byte for
// length-delimited fields, uint64 otherwise).
func fields(t *testing.T, b []byte) map[protowire.Number][]any {
	t.Helper()
	out := map[protowire.Number][]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		b = b[n:]
		var v any
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(b)
			v = uint64(u)
		default:
			t.Fatalf("field %d: unexpected wire type %d", num, typ)
		}
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		b = b[n:]
		out[num] = append(out[num], v)
	}
	return out
}

func TestMarshalModelErrors(t *testing.T) {
	bytes := func(k int) ([]string, []int32) {
		var p []string
		var ty []int32
		for b := range k {
			p = append(p, fmt.Sprintf("<0x%02X>", b))
			ty = append(ty, TypeByte)
		}
		return p, ty
	}
	few, fewTypes := bytes(4)
	cases := []struct {
		name   string
		pieces []string
		types  []int32
		unk    int
		sub    string
	}{
		{"no unk", []string{"a", "b"}, nil, -1, "needs an unknown token"},
		{"two unk", []string{"<unk>", "<unk2>"}, []int32{TypeUnknown, TypeUnknown}, 0, "second unknown token"},
		{"empty piece", []string{"<unk>", ""}, nil, 0, "piece 1 is empty"},
		{"duplicate", []string{"<unk>", "a", "a"}, nil, 0, `pieces 1 and 2 are both "a"`},
		{"few bytes", append([]string{"<unk>"}, few...), append([]int32{TypeUnknown}, fewTypes...), 0, "4 byte pieces"},
		{"lower-case byte", []string{"<unk>", "<0xab>"}, []int32{TypeUnknown, TypeByte}, 0, `spells it "<0xAB>"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewSPM(c.pieces, nil, c.types, -1, -1, c.unk)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.MarshalModel()
			if err == nil || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %v, want %q", err, c.sub)
			}
		})
	}
}

// msg builds a message from alternating field numbers and values: string
// or []byte (length-delimited), uint64 or int (varint), float32 (fixed32).
func msg(kv ...any) []byte {
	var b []byte
	for i := 0; i < len(kv); i += 2 {
		num := protowire.Number(kv[i].(int))
		switch v := kv[i+1].(type) {
		case string:
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendString(b, v)
		case []byte:
			b = protowire.AppendTag(b, num, protowire.BytesType)
			b = protowire.AppendBytes(b, v)
		case int:
			b = protowire.AppendTag(b, num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(v)))
		case float32:
			b = protowire.AppendTag(b, num, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(v))
		default:
			panic(fmt.Sprintf("msg: %T", v))
		}
	}
	return b
}

func TestParseModelErrors(t *testing.T) {
	bpe := msg(fieldTrainerModelType, modelBPE)
	identity := msg(fieldNormName, "identity", fieldNormRemoveWhitespace, 0)
	unk := msg(fieldPiecePiece, "<unk>", fieldPieceType, TypeUnknown)
	a := msg(fieldPiecePiece, "a", fieldPieceScore, float32(-1))
	model := func(extra ...any) []byte {
		return append(msg(1, unk, 1, a, 2, bpe, 3, identity), msg(extra...)...)
	}
	if _, err := ParseModel(model()); err != nil {
		t.Fatalf("base model: %v", err)
	}
	valid, err := byteVocab(t).MarshalModel()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		is   error
		sub  string
	}{
		{"empty", nil, ErrMalformedModel, "no pieces"},
		{"truncated tag", []byte{0x80}, ErrMalformedModel, "at byte 0"},
		{"field zero", []byte{0x00, 0x01}, ErrMalformedModel, "invalid field number"},
		{"truncated length", []byte{0x0a}, ErrMalformedModel, "field 1 at byte 0"},
		{"length past the end", []byte{0x0a, 0x05, 'a'}, ErrMalformedModel, "field 1 at byte 0"},
		{"overlong varint", append([]byte{0x08}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), ErrMalformedModel, "field 1"},
		{"end group", []byte{0x0c}, ErrMalformedModel, "field 1"},
		{"truncated valid model", valid[:len(valid)/2], ErrMalformedModel, ""},
		{"pieces as varint", []byte{0x08, 0x01}, ErrMalformedModel, "pieces has wire type 0"},
		{"truncated piece", model(1, []byte{0x0a, 0x09, 'a'}), ErrMalformedModel, "piece 2"},
		{"score as varint", model(1, msg(fieldPiecePiece, "b", fieldPieceScore, 3)), ErrMalformedModel, "score has wire type 0"},
		{"unknown piece type", model(1, msg(fieldPiecePiece, "b", fieldPieceType, 9)), ErrMalformedModel, "unknown type 9"},
		{"empty piece", model(1, msg(fieldPieceScore, float32(1))), ErrMalformedModel, "piece 2: " + ErrMalformedModel.Error() + ": empty piece"},
		{"duplicate piece", model(1, a), ErrMalformedModel, `pieces 1 and 2 are both "a"`},
		{"bad byte piece", model(1, msg(fieldPiecePiece, "<0xZZ>", fieldPieceType, TypeByte)), ErrMalformedModel, `byte token 2 is "<0xZZ>"`},
		{"bos out of range", model(2, msg(fieldTrainerBosID, 7)), ErrMalformedModel, "bos_id 7 outside the vocabulary of 2 pieces"},
		{"eos below -1", model(2, msg(fieldTrainerEosID, -2)), ErrMalformedModel, "eos_id -2"},
		{"trainer as fixed32", model(2, float32(1)), ErrMalformedModel, "trainer_spec has wire type 5"},
		{"model type as bytes", model(2, msg(fieldTrainerModelType, "x")), ErrMalformedModel, "model_type has wire type 2"},
		{"unknown model type", model(2, msg(fieldTrainerModelType, 9)), ErrMalformedModel, "unknown model_type 9"},
		{"no trainer spec", msg(1, unk, 1, a, 3, identity), ErrUnsupportedModel, "Unigram"},
		{"unigram", model(2, msg(fieldTrainerModelType, modelUnigram)), ErrUnsupportedModel, "only BPE"},
		{"char", model(2, msg(fieldTrainerModelType, modelChar)), ErrUnsupportedModel, "WORD or CHAR"},
		{"whitespace suffix", model(2, msg(fieldTrainerWhitespaceSuffix, 1)), ErrUnsupportedModel, "treat_whitespace_as_suffix"},
		{"charsmap", model(3, msg(fieldNormName, "nmt_nfkc", fieldNormCharsmap, "\x01\x02")), ErrUnsupportedModel, `normalizer "nmt_nfkc"`},
		{"remove whitespace by default", msg(1, unk, 2, bpe), ErrUnsupportedModel, "remove_extra_whitespaces"},
		{"no escaping", model(3, msg(fieldNormEscapeWhitespace, 0)), ErrUnsupportedModel, "escape_whitespaces"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseModel(c.data)
			if err == nil {
				t.Fatalf("parsed a tokenizer of %d pieces", s.VocabSize())
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.sub) {
				t.Fatalf("error %q, want %v containing %q", err, c.is, c.sub)
			}
		})
	}
}

// TestParseModelLenient covers what protobuf allows and ParseModel must
// accept: unknown fields, groups, split sub-messages and defaults.
func TestParseModelLenient(t *testing.T) {
	unk := msg(fieldPiecePiece, "<unk>", fieldPieceType, TypeUnknown)
	a := msg(fieldPiecePiece, "a", 200, "extension")
	group := protowire.AppendTag(nil, 9, protowire.StartGroupType)
	group = append(group, msg(1, 5)...)
	group = protowire.AppendTag(group, 9, protowire.EndGroupType)
	var data []byte
	data = append(data, msg(1, unk, 2, msg(fieldTrainerModelType, modelBPE), 1, a)...)
	data = append(data, group...)
	data = append(data, msg(4, "self test data", 2, msg(fieldTrainerBosID, -1, fieldTrainerEosID, -1))...)
	data = append(data, msg(3, msg(fieldNormRemoveWhitespace, 0, fieldNormDummyPrefix, 0))...)
	s, err := ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.VocabSize() != 2 || s.UNK() != 0 || s.BOS() != -1 || s.EOS() != -1 || s.DummyPrefix() {
		t.Fatalf("vocab %d unk %d bos %d eos %d prefix %v", s.VocabSize(), s.UNK(), s.BOS(), s.EOS(), s.DummyPrefix())
	}
	if got := s.Encode("aa", false); !reflect.DeepEqual(got, []int{1, 1}) {
		t.Fatalf("Encode = %v", got)
	}
}

// TestWriteFuzzSeeds regenerates the seed corpus of FuzzParseModel when
// SPM_WRITE_FUZZ_SEEDS is set.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SPM_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set SPM_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzParseModel")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseModel")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	full, err := byteVocab(t).MarshalModel()
	if err != nil {
		t.Fatal(err)
	}
	small, err := NewSPM([]string{"<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁a"},
		[]float32{0, 0, 0, -1, -2, -3, -4, -5}, []int32{2, 3, 3, 1, 1, 1, 1, 1}, 1, 2, 0, WithDummyPrefix(false))
	if err != nil {
		t.Fatal(err)
	}
	smallData, err := small.MarshalModel()
	if err != nil {
		t.Fatal(err)
	}
	trained, err := os.ReadFile(filepath.Join("testdata", "sentencepiece-bpe.model"))
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{
		"sentencepiece-trained": trained,
		"byte-fallback":         full,
		"small":                 smallData,
		"truncated":             smallData[:len(smallData)-7],
		"unigram":               append(append([]byte(nil), smallData...), msg(2, msg(fieldTrainerModelType, modelUnigram))...),
		"empty":                 {},
	}
	for name, data := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzParseModel checks that ParseModel never panics, that what it accepts
// encodes without panicking, and that what it accepts and MarshalModel
// writes parses back to the same vocabulary.
func FuzzParseModel(f *testing.F) {
	f.Add([]byte{})
	f.Add(msg(1, msg(1, "<unk>", 3, TypeUnknown), 2, msg(3, modelBPE), 3, msg(4, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseModel(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedModel) && !errors.Is(err, ErrUnsupportedModel) {
				t.Fatalf("error %q wraps neither sentinel", err)
			}
			return
		}
		text := "ab a日本 " + string(data[:min(len(data), 32)])
		s.Decode(s.Encode(text, true))
		out, err := s.MarshalModel()
		if err != nil {
			return // a vocabulary sentencepiece would refuse
		}
		r, err := ParseModel(out)
		if err != nil {
			t.Fatalf("re-parsing MarshalModel's output: %v", err)
		}
		p1, s1, _ := s.Vocab()
		p2, s2, _ := r.Vocab()
		if !reflect.DeepEqual(p1, p2) || len(s1) != len(s2) {
			t.Fatal("pieces changed in the round trip")
		}
		for i := range s1 {
			if math.Float32bits(s1[i]) != math.Float32bits(s2[i]) {
				t.Fatalf("score %d: %v became %v", i, s1[i], s2[i])
			}
		}
		if s.BOS() != r.BOS() || s.EOS() != r.EOS() || s.UNK() != r.UNK() || s.DummyPrefix() != r.DummyPrefix() {
			t.Fatal("special tokens or dummy prefix changed in the round trip")
		}
	})
}

// TestParseSentencePieceFile reads a model trained by sentencepiece 0.1.97
// (model_type=bpe, vocab_size=400, byte_fallback, identity normalization,
// remove_extra_whitespaces=false, on a small synthetic corpus) and checks
// the encodings sentencepiece itself gave, with BOS prepended.
func TestParseSentencePieceFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "sentencepiece-bpe.model"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseModel(data)
	if err != nil {
		t.Fatal(err)
	}
	if s.VocabSize() != 400 || s.UNK() != 0 || s.BOS() != 1 || s.EOS() != 2 || !s.DummyPrefix() {
		t.Fatalf("vocab %d unk %d bos %d eos %d prefix %v", s.VocabSize(), s.UNK(), s.BOS(), s.EOS(), s.DummyPrefix())
	}
	cases := []struct {
		text string
		want []int
	}{
		{"Once upon a time", []int{1, 344, 308, 265, 321}},
		{"Lily saw a big dog.  Two  spaces", []int{1, 354, 303, 366, 384, 265, 327, 304, 377, 362, 332, 384, 367, 362, 303, 376, 366, 298, 374}},
		{"日本 🙂 é", []int{1, 362, 233, 154, 168, 233, 159, 175, 362, 243, 162, 156, 133, 362, 198, 172}},
		{"xyzzy QQQ tom,cat!", []int{1, 362, 123, 378, 125, 125, 378, 362, 84, 84, 84, 313, 47, 380, 297, 36}},
	}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			got := s.Encode(c.text, true)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("Encode = %v, want %v", got, c.want)
			}
			if d := s.Decode(got); d != c.text {
				t.Fatalf("Decode = %q", d)
			}
		})
	}
}
