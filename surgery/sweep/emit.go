package sweep

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// EmitOptions configure the cluster jobs Kubernetes and Slurm write.
type EmitOptions struct {
	// Out is the sweep folder as the jobs see it. Default: for
	// Kubernetes MountPath/<name of the sweep folder>, for Slurm the
	// sweep's own folder (a shared file system).
	Out string
	// Parallel bounds the points running at once (0: no bound).
	Parallel int
	// CPUs per point (default 1); also each point's GOMAXPROCS.
	CPUs int
	// Memory requested per point on Kubernetes ("4Gi"; "" for none).
	Memory string
	// Name of the job (default surgeon-<name of the sweep folder>).
	Name string
	// Binary is the surgeon command in the image or on the nodes
	// (default "surgeon").
	Binary string
	// WorkDir is the points' working directory. Slurm: default the
	// folder the job was emitted from (#SBATCH --chdir), so that nothing
	// depends on where sbatch runs. Kubernetes: the container's
	// workingDir, where a relative recipe path resolves in the image
	// (default: the recipe's absolute path, which must exist in the pod).
	WorkDir string
	// Cache is SURGEON_CACHE of the points, where hf:// models are
	// downloaded once for all of them: storage every node shares. Default
	// for Kubernetes MountPath/.cache (the results volume); for Slurm the
	// emitting environment's SURGEON_CACHE, else <sweep folder>/.cache.
	Cache string
	// Indices, when set, are the points the job runs (by index, as
	// --list numbers them), for example only the missing ones; default
	// every point.
	Indices []int
	// Env are extra KEY=VALUE variables for the points.
	Env []string
	// Image is the container image (Kubernetes; default "surgeon:latest").
	Image string
	// PVC is the PersistentVolumeClaim holding the results (Kubernetes;
	// default "surgeon-results"), mounted at MountPath (default
	// "/results").
	PVC       string
	MountPath string
}

// Emit defaults.
const (
	DefaultImage     = "surgeon:latest"
	DefaultPVC       = "surgeon-results"
	DefaultMountPath = "/results"
)

// IndexVar is what the Kubernetes point command uses for the job's
// completion index; the kubelet substitutes it from the pod's env.
const IndexVar = "$(JOB_COMPLETION_INDEX)"

func (o *EmitOptions) defaults(s *Sweep, kube bool) error {
	if o.CPUs < 1 {
		o.CPUs = 1
	}
	if o.Binary == "" {
		o.Binary = "surgeon"
	}
	if o.Image == "" {
		o.Image = DefaultImage
	}
	if o.PVC == "" {
		o.PVC = DefaultPVC
	}
	if o.MountPath == "" {
		o.MountPath = DefaultMountPath
	}
	if o.Name == "" {
		o.Name = "surgeon-" + filepath.Base(s.Dir)
	}
	o.Name = dnsLabel(o.Name)
	if o.Out == "" {
		if kube {
			o.Out = path.Join(o.MountPath, filepath.Base(s.Dir))
		} else {
			o.Out = s.Dir
		}
	}
	if !kube {
		// A Slurm task starts wherever sbatch ran: every path it uses is
		// absolute, resolved now.
		var err error
		if o.Out, err = filepath.Abs(o.Out); err != nil {
			return fmt.Errorf("sweep folder: %w", err)
		}
		if o.WorkDir == "" {
			if o.WorkDir, err = os.Getwd(); err != nil {
				return fmt.Errorf("working directory: %w", err)
			}
		}
		if o.WorkDir, err = filepath.Abs(o.WorkDir); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
		if o.Cache == "" {
			o.Cache = os.Getenv("SURGEON_CACHE")
		}
		if o.Cache == "" {
			o.Cache = filepath.Join(o.Out, ".cache")
		}
		if o.Cache, err = filepath.Abs(o.Cache); err != nil {
			return fmt.Errorf("cache folder: %w", err)
		}
	} else if o.Cache == "" {
		o.Cache = path.Join(o.MountPath, ".cache")
	}
	seen := map[int]bool{}
	for _, i := range o.Indices {
		if i < 0 || i >= len(s.Points) {
			return fmt.Errorf("no point %d: the sweep has %d (0 to %d)", i, len(s.Points), len(s.Points)-1)
		}
		if seen[i] {
			return fmt.Errorf("point %d listed twice", i)
		}
		seen[i] = true
	}
	var env []string
	for _, kv := range o.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("env %q: want KEY=VALUE", kv)
		}
		if k == "SURGEON_CACHE" {
			o.Cache = v // one SURGEON_CACHE, the one asked for
			continue
		}
		env = append(env, kv)
	}
	o.Env = env
	if len(s.Points) == 0 {
		return fmt.Errorf("the sweep has no points")
	}
	return nil
}

func (s *Sweep) stem() string {
	return strings.TrimSuffix(filepath.Base(s.Recipe), filepath.Ext(s.Recipe))
}

// PointArgs are the arguments after the surgeon binary that run point
// index (a number or a variable such as IndexVar) of the recipe file
// recipe with its results in out. The point refuses to run unless the
// recipe still has the hash it had when the job was written
// (--expect-hash). With indices, index counts into that list
// (--indices): the job runs only those points.
func (s *Sweep) PointArgs(recipe, index, out string, indices []int) []string {
	args := []string{"sweep", recipe, "--point", index, "--out", out, "--expect-hash", s.Hash}
	if len(indices) > 0 {
		args = append(args, "--indices", joinInts(indices))
	}
	for _, kv := range s.Sets {
		args = append(args, "--set", kv)
	}
	return args
}

// joinInts writes 3,5,7.
func joinInts(v []int) string {
	out := make([]string, len(v))
	for i, n := range v {
		out[i] = strconv.Itoa(n)
	}
	return strings.Join(out, ",")
}

// absRecipe is the sweep recipe as an absolute path.
func (s *Sweep) absRecipe() (string, error) {
	p, err := filepath.Abs(s.Recipe)
	if err != nil {
		return "", fmt.Errorf("recipe %s: %w", s.Recipe, err)
	}
	return p, nil
}

// Kubernetes returns the sweep as a batch/v1 Job in Indexed completion
// mode: one completion per point, each pod running
// `surgeon sweep RECIPE --point $(JOB_COMPLETION_INDEX) --out OUT` with the
// results volume (a PersistentVolumeClaim) mounted. A failed index is
// retried twice (the point resumes from its checkpoint) without stopping
// the others.
func Kubernetes(s *Sweep, o EmitOptions) (*batchv1.Job, error) {
	if err := o.defaults(s, true); err != nil {
		return nil, err
	}
	n := int32(len(s.Points))
	if len(o.Indices) > 0 {
		n = int32(len(o.Indices))
	}
	par := n
	if o.Parallel > 0 && int32(o.Parallel) < n {
		par = int32(o.Parallel)
	}
	labels := map[string]string{"app.kubernetes.io/name": "surgeon", "app.kubernetes.io/component": "sweep", "surgeon/sweep": dnsLabel(s.stem())}
	env := []corev1.EnvVar{
		{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
		{Name: "GOMAXPROCS", Value: strconv.Itoa(o.CPUs)},
		{Name: "SURGEON_CACHE", Value: o.Cache},
	}
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	req := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(strconv.Itoa(o.CPUs))}
	if o.Memory != "" {
		q, err := resource.ParseQuantity(o.Memory)
		if err != nil {
			return nil, fmt.Errorf("memory %q: %w", o.Memory, err)
		}
		req[corev1.ResourceMemory] = q
	}
	// The recipe as the pod sees it: relative to WorkDir in the image,
	// else the absolute path it has here (on a volume mounted at the same
	// place, or baked into the image there).
	rec := s.Recipe
	if o.WorkDir == "" || filepath.IsAbs(rec) {
		var err error
		if rec, err = s.absRecipe(); err != nil {
			return nil, err
		}
	} else {
		rec = filepath.ToSlash(rec)
	}
	mode := batchv1.IndexedCompletion
	retries := int32(2)
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: labels, Annotations: map[string]string{"surgeon/recipe": s.Recipe, "surgeon/recipe-hash": s.Hash}},
		Spec: batchv1.JobSpec{
			CompletionMode:       &mode,
			Completions:          &n,
			Parallelism:          &par,
			BackoffLimitPerIndex: &retries,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name:         "surgeon",
						Image:        o.Image,
						Command:      []string{o.Binary},
						Args:         s.PointArgs(rec, IndexVar, o.Out, o.Indices),
						WorkingDir:   o.WorkDir,
						Env:          env,
						Resources:    corev1.ResourceRequirements{Requests: req},
						VolumeMounts: []corev1.VolumeMount{{Name: "results", MountPath: o.MountPath}},
					}},
					Volumes: []corev1.Volume{{Name: "results", VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: o.PVC}}}},
				},
			},
		},
	}
	return job, nil
}

// KubernetesYAML returns the Kubernetes Job as YAML, ready for
// `kubectl apply -f`.
func KubernetesYAML(s *Sweep, o EmitOptions) ([]byte, error) {
	job, err := Kubernetes(s, o)
	if err != nil {
		return nil, err
	}
	body, err := yaml.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("kubernetes job: %w", err)
	}
	head := fmt.Sprintf("# Sweep %s: %d points as a Kubernetes Indexed Job.\n# kubectl apply -f THIS_FILE; then: surgeon sweep report %s\n",
		s.Recipe, len(s.Points), job.Spec.Template.Spec.Containers[0].Args[5])
	return append([]byte(head), body...), nil
}

// Slurm returns the sweep as an sbatch job-array script: one array task
// per point, each running
// `surgeon sweep RECIPE --point $SLURM_ARRAY_TASK_ID --out OUT`.
func Slurm(s *Sweep, o EmitOptions) (string, error) {
	if err := o.defaults(s, false); err != nil {
		return "", err
	}
	rec, err := s.absRecipe()
	if err != nil {
		return "", err
	}
	n := len(s.Points)
	array := fmt.Sprintf("0-%d", n-1)
	if len(o.Indices) > 0 {
		n = len(o.Indices)
		array = joinInts(o.Indices)
	}
	if o.Parallel > 0 && o.Parallel < n {
		array += fmt.Sprintf("%%%d", o.Parallel)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\n")
	fmt.Fprintf(&b, "# Sweep %s: %d of its %d points as a Slurm job array (hash %.12s).\n", rec, n, len(s.Points), s.Hash)
	fmt.Fprintf(&b, "# Every path is absolute: submit from any folder. Each task checks the recipe's hash.\n")
	fmt.Fprintf(&b, "# sbatch THIS_FILE; then: surgeon sweep report %s\n", shellQuote(o.Out))
	fmt.Fprintf(&b, "#SBATCH --job-name=%s\n", o.Name)
	fmt.Fprintf(&b, "#SBATCH --array=%s\n", array)
	fmt.Fprintf(&b, "#SBATCH --cpus-per-task=%d\n", o.CPUs)
	if o.Memory != "" {
		fmt.Fprintf(&b, "#SBATCH --mem=%s\n", strings.TrimSuffix(strings.TrimSuffix(o.Memory, "i"), "B"))
	}
	fmt.Fprintf(&b, "#SBATCH --chdir=%s\n", o.WorkDir)
	fmt.Fprintf(&b, "#SBATCH --output=%s\n", filepath.Join(o.Out, "logs", "slurm-%A_%a.out"))
	fmt.Fprintf(&b, "set -euo pipefail\n")
	fmt.Fprintf(&b, "cd %s\n", shellQuote(o.WorkDir))
	fmt.Fprintf(&b, "export SURGEON_CACHE=%s\n", shellQuote(o.Cache))
	fmt.Fprintf(&b, "export GOMAXPROCS=\"${SLURM_CPUS_PER_TASK:-%d}\"\n", o.CPUs)
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	args := s.PointArgs(rec, "@INDEX@", o.Out, nil)
	line := "exec " + shellQuote(o.Binary) + " " + quoteArgs(args)
	line = strings.Replace(line, "@INDEX@", `"$SLURM_ARRAY_TASK_ID"`, 1)
	fmt.Fprintf(&b, "%s\n", line)
	return b.String(), nil
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=,+@%-]+$`)

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dnsLabel turns s into a Kubernetes name: lower case letters, digits and
// '-', starting and ending with a letter or digit, at most 63 characters.
func dnsLabel(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := b.String()
	if len(out) > 63 {
		out = out[:63]
	}
	out = strings.Trim(out, "-")
	if out == "" {
		out = "surgeon-sweep"
	}
	return out
}
