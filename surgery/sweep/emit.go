package sweep

import (
	"fmt"
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
	// WorkDir is where the recipe path resolves (default: the image's or
	// the submit directory).
	WorkDir string
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
	for _, kv := range o.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("env %q: want KEY=VALUE", kv)
		}
	}
	if len(s.Points) == 0 {
		return fmt.Errorf("the sweep has no points")
	}
	return nil
}

func (s *Sweep) stem() string {
	return strings.TrimSuffix(filepath.Base(s.Recipe), filepath.Ext(s.Recipe))
}

// PointArgs are the arguments after the surgeon binary that run point
// index (a number or a variable such as IndexVar) with its results in
// out.
func (s *Sweep) PointArgs(index, out string) []string {
	args := []string{"sweep", s.Recipe, "--point", index, "--out", out}
	for _, kv := range s.Sets {
		args = append(args, "--set", kv)
	}
	return args
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
	par := n
	if o.Parallel > 0 && int32(o.Parallel) < n {
		par = int32(o.Parallel)
	}
	labels := map[string]string{"app.kubernetes.io/name": "surgeon", "app.kubernetes.io/component": "sweep", "surgeon/sweep": dnsLabel(s.stem())}
	env := []corev1.EnvVar{
		{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
			FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
		{Name: "GOMAXPROCS", Value: strconv.Itoa(o.CPUs)},
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
						Args:         s.PointArgs(IndexVar, o.Out),
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
	n := len(s.Points)
	array := fmt.Sprintf("0-%d", n-1)
	if o.Parallel > 0 && o.Parallel < n {
		array += fmt.Sprintf("%%%d", o.Parallel)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\n")
	fmt.Fprintf(&b, "# Sweep %s: %d points as a Slurm job array.\n", s.Recipe, n)
	fmt.Fprintf(&b, "# sbatch THIS_FILE; then: surgeon sweep report %s\n", shellQuote(o.Out))
	fmt.Fprintf(&b, "#SBATCH --job-name=%s\n", o.Name)
	fmt.Fprintf(&b, "#SBATCH --array=%s\n", array)
	fmt.Fprintf(&b, "#SBATCH --cpus-per-task=%d\n", o.CPUs)
	if o.Memory != "" {
		fmt.Fprintf(&b, "#SBATCH --mem=%s\n", strings.TrimSuffix(strings.TrimSuffix(o.Memory, "i"), "B"))
	}
	fmt.Fprintf(&b, "#SBATCH --output=%s-%%A_%%a.out\n", o.Name)
	fmt.Fprintf(&b, "set -euo pipefail\n")
	if o.WorkDir != "" {
		fmt.Fprintf(&b, "cd %s\n", shellQuote(o.WorkDir))
	}
	fmt.Fprintf(&b, "export GOMAXPROCS=\"${SLURM_CPUS_PER_TASK:-%d}\"\n", o.CPUs)
	for _, kv := range o.Env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(v))
	}
	args := s.PointArgs("@INDEX@", o.Out)
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
