package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/surgeon-ml/surgeon/core/checkpoint"
	"github.com/surgeon-ml/surgeon/core/ops"
	"github.com/surgeon-ml/surgeon/formats/gguf"
	"github.com/surgeon-ml/surgeon/formats/peft"
	"github.com/surgeon-ml/surgeon/surgery/attach"
)

// convertGGUFLoRA writes a saved adapter folder as a llama.cpp LoRA GGUF
// for the base model: the adapter is attached through its plugin, and
// every module must be a plain low-rank update (adapter.LowRank); others
// are refused with the way out (merge into a GGUF).
func convertGGUFLoRA(ctx context.Context, stdout io.Writer, adapterDir, basePath, out string) error {
	if basePath == "" {
		return usagef("--to gguf-lora needs --base MODEL (its layout and head counts)")
	}
	basePath, err := resolvePath(ctx, basePath)
	if err != nil {
		return err
	}
	l, err := checkpoint.Load(basePath)
	if err != nil {
		return err
	}
	defer l.Close()
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	m, err := attach.AttachFolder(ctx, l.Model, mgr.Adapters(), adapterDir)
	if err != nil {
		return err
	}
	adapted := attach.Adapted(m)
	paths := make([]string, 0, len(adapted))
	for p := range adapted {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var mods []gguf.LoRAModule
	for _, p := range paths {
		a := adapted[p]
		A, B, s, ok := a.LowRank()
		if !ok {
			return fmt.Errorf("%s: module %s (%s) is not a plain low-rank update, which is all llama.cpp's LoRA format holds; merge it instead: surgeon merge %s --adapter %s -o OUT.gguf",
				adapterDir, p, a.Type, basePath, adapterDir)
		}
		r := ops.Rows(A)
		mods = append(mods, gguf.LoRAModule{Module: p, A: ops.Data(A), B: ops.Data(B), R: r, In: a.Base.In(), Out: a.Base.Out(), Scale: s})
	}
	if err := gguf.WriteLoRA(out, m.HFConfig(), filepath.Base(adapterDir), mods); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d LoRA modules for llama.cpp)\n", out, len(mods))
	return nil
}

// isGGUFAdapter reports whether the GGUF file at path is a llama.cpp
// adapter (general.type "adapter") rather than a model.
func isGGUFAdapter(path string) bool {
	f, err := gguf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	typ, err := f.String("general.type")
	return err == nil && typ == "adapter"
}

// convertGGUFLoRAToPEFT writes a llama.cpp LoRA adapter GGUF as a PEFT
// adapter folder for the base model: the modules, A, B and scales that
// llama.cpp applies, q/k rows back in Hugging Face's layout. The adapter
// is attached to the base through the LoRA plugin before it is written,
// so a module the base lacks fails here, not when the folder is used.
func convertGGUFLoRAToPEFT(ctx context.Context, stdout io.Writer, src, basePath, out string) error {
	if basePath == "" {
		return usagef("--to peft from a llama.cpp LoRA GGUF needs --base MODEL (its layout and head counts)")
	}
	basePath, err := resolvePath(ctx, basePath)
	if err != nil {
		return err
	}
	l, err := checkpoint.Load(basePath)
	if err != nil {
		return err
	}
	defer l.Close()
	a, err := attach.GGUFLoRA(src, l.Model)
	if err != nil {
		return err
	}
	mgr, err := newManager()
	if err != nil {
		return err
	}
	defer mgr.Close()
	if _, err := attach.AttachFolder(ctx, l.Model, mgr.Adapters(), src); err != nil {
		return err
	}
	a.Config.BaseModel = basePath
	if err := peft.Write(out, a); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: %d LoRA modules from %s\n", out, len(a.Modules), src)
	return nil
}
