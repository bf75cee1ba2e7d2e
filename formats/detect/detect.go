// Package detect tells what a file or folder holds: a safetensors file, a
// folder of safetensors shards, a Hugging Face model folder, a GGUF file, a
// PyTorch pickle, a PEFT adapter folder, or a spago native model or adapter.
// It is the one place that decides; loaders, inspect and convert all ask it.
//
// Files are classified by their first bytes, never by their name alone:
// GGUF by its magic, safetensors by its 8-byte header length followed by a
// JSON object, PyTorch checkpoints by the zip signature (torch.save since
// 1.6) or a pickle protocol opcode (older torch.save), spago native files
// by their encoding/gob header. A file whose content matches nothing is an
// error that says what its extension promised. Folders are classified by
// the files they hold.
package detect

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Format names what a path holds. The values are the names reports show.
type Format string

// The formats Path recognises.
const (
	// Safetensors is one .safetensors file.
	Safetensors Format = "safetensors"
	// SafetensorsFolder is a folder of safetensors files without a
	// config.json: shards with model.safetensors.index.json, or loose files.
	SafetensorsFolder Format = "safetensors-folder"
	// HFModel is a Hugging Face model folder: config.json and its weights
	// (model.safetensors, sharded safetensors with an index, or
	// pytorch_model.bin).
	HFModel Format = "hf-model"
	// GGUF is a GGUF file.
	GGUF Format = "gguf"
	// PyTorch is a torch.save checkpoint (.bin, .pt, .pth): a zip archive
	// or a bare pickle.
	PyTorch Format = "pytorch"
	// PEFTAdapter is a PEFT adapter folder (adapter_config.json).
	PEFTAdapter Format = "peft-adapter"
	// Native is a spago native model: a folder holding NativeModelFile
	// (with config.json and tokenizer files), or a bare gob file as written
	// by earlier versions.
	Native Format = "native"
	// NativeAdapter is a spago native adapter file (gob of an Adapter).
	NativeAdapter Format = "native-adapter"
)

// File names that classify folders.
const (
	// NativeModelFile is the gob-encoded model inside a native folder.
	NativeModelFile = "model.spago"
	// NativeExt is the extension of native files and folders.
	NativeExt = ".spago"
	// ConfigFile is a Hugging Face model's config.
	ConfigFile = "config.json"
	// AdapterConfigFile is a PEFT adapter's config.
	AdapterConfigFile = "adapter_config.json"
	// SafetensorsFile is the weights file of an unsharded model folder.
	SafetensorsFile = "model.safetensors"
	// SafetensorsIndexFile indexes the shards of a sharded model folder.
	SafetensorsIndexFile = "model.safetensors.index.json"
	// PyTorchFile is the weights file of an older Hugging Face folder.
	PyTorchFile = "pytorch_model.bin"
)

// HeadSize is how many leading bytes of a file Head looks at.
const HeadSize = 256

// ErrUnknown is wrapped by Path's error for content it does not recognise.
var ErrUnknown = errors.New("unrecognised format")

// Path tells what the file or folder at path holds. Errors name path.
func Path(path string) (Format, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return folder(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, HeadSize)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if format := Head(head[:n]); format != "" {
		return format, nil
	}
	if n < 9 {
		return "", fmt.Errorf("%s: file of %d bytes is too short to be a checkpoint: %w", path, n, ErrUnknown)
	}
	if want := byExtension(path); want != "" {
		return "", fmt.Errorf("%s: named like a %s file but its content is not one: %w", path, want, ErrUnknown)
	}
	return "", fmt.Errorf("%s: not a GGUF, safetensors, PyTorch or spago native file: %w", path, ErrUnknown)
}

// byExtension is the format a file name suggests, for error messages.
func byExtension(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".safetensors":
		return "safetensors"
	case ".gguf":
		return "GGUF"
	case ".bin", ".pt", ".pth":
		return "PyTorch"
	case NativeExt:
		return "spago native"
	}
	return ""
}

// Head classifies a file from its first bytes (up to HeadSize), or
// returns "" when they match no format.
func Head(head []byte) Format {
	switch {
	case len(head) >= 4 && string(head[:4]) == "GGUF":
		return GGUF
	case isSafetensors(head):
		return Safetensors
	case len(head) >= 4 && string(head[:4]) == "PK\x03\x04":
		return PyTorch
	case len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5: // PROTO opcode
		return PyTorch
	}
	if name, ok := gobStruct(head); ok {
		if name == "Adapter" {
			return NativeAdapter
		}
		return Native
	}
	return ""
}

// isSafetensors reports a little-endian header length (of a sane size)
// followed by the JSON header's opening brace.
func isSafetensors(head []byte) bool {
	if len(head) < 9 || head[8] != '{' {
		return false
	}
	n := binary.LittleEndian.Uint64(head[:8])
	return n >= 2 && n < 1<<32
}

// gobStruct reads the first message of an encoding/gob stream, which for
// an encoded struct (spago's nn.Dump of a model or adapter) defines the
// struct's type, and returns the struct's Go type name.
func gobStruct(b []byte) (string, bool) {
	size, n, ok := gobUint(b)
	if !ok || size == 0 || size > 1<<20 {
		return "", false
	}
	b = b[n:]
	id, n, ok := gobUint(b)
	if !ok || id&1 == 0 { // type definitions have negative ids
		return "", false
	}
	b = b[n:]
	// wireType{StructT: {CommonType: {Name: ...}}}: field deltas 3, 1, 1.
	if len(b) < 3 || b[0] != 3 || b[1] != 1 || b[2] != 1 {
		return "", false
	}
	b = b[3:]
	l, n, ok := gobUint(b)
	if !ok || l == 0 || l > 64 || uint64(len(b)-n) < l {
		return "", false
	}
	name := string(b[n : n+int(l)])
	for i, r := range name {
		letter := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return "", false
		}
	}
	return name, true
}

// gobUint decodes an encoding/gob unsigned integer: one byte below 128,
// else a byte holding minus the count of big-endian bytes that follow.
func gobUint(b []byte) (v uint64, n int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	if b[0] < 0x80 {
		return uint64(b[0]), 1, true
	}
	k := -int(int8(b[0]))
	if k > 8 || len(b) < 1+k {
		return 0, 0, false
	}
	for _, c := range b[1 : 1+k] {
		v = v<<8 | uint64(c)
	}
	return v, 1 + k, true
}

// folder classifies a folder by the files it holds.
func folder(dir string) (Format, error) {
	has := func(name string) bool {
		st, err := os.Stat(filepath.Join(dir, name))
		return err == nil && !st.IsDir()
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	safetensors := has(SafetensorsFile) || has(SafetensorsIndexFile) || len(shards) > 0
	switch {
	case has(AdapterConfigFile):
		return PEFTAdapter, nil
	case has(NativeModelFile):
		return Native, nil
	case has(ConfigFile) && (safetensors || has(PyTorchFile)):
		return HFModel, nil
	case has(ConfigFile):
		return "", fmt.Errorf("%s: folder has a %s but no weights (%s, %s with shards, %s or %s): %w",
			dir, ConfigFile, SafetensorsFile, SafetensorsIndexFile, PyTorchFile, NativeModelFile, ErrUnknown)
	case safetensors:
		return SafetensorsFolder, nil
	}
	return "", fmt.Errorf("%s: folder holds no %s, %s, %s or safetensors files: %w",
		dir, ConfigFile, AdapterConfigFile, NativeModelFile, ErrUnknown)
}
