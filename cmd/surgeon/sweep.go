package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
	"github.com/surgeon-ml/surgeon/surgery/sweep"
)

func init() {
	register("sweep", command{
		usage: "sweep RECIPE.toml [--set key=value ...] [--parallel N] [--out DIR] [--list | --point I | --emit kubernetes|slurm [--missing]]\n       surgeon sweep report DIR\n       surgeon sweep status DIR [--json]\n       surgeon sweep ranks DIR [--from POINT]",
		short: "run the points of a recipe's [sweep] (ranks, seeds, baselines) and report them in a table and plots",
		run:   runSweep,
	})
}

func runSweep(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "ranks" {
		return runRankSweep(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == "status" {
		return sweepStatus(args[1:], stdout)
	}
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	var sets, env listFlag
	fs.Var(&sets, "set", "override a recipe value in every point, e.g. --set train.max_steps=100 (repeatable)")
	parallel := fs.Int("parallel", 1, "points run at once (each gets GOMAXPROCS = CPUs/N); with --emit, the cluster's bound")
	out := fs.String("out", "", "sweep folder (default: the recipe's sweep.dir, else runs/<recipe name>-sweep next to the recipe)")
	list := fs.Bool("list", false, "list the points and exit")
	point := fs.Int("point", -1, "run only point I (0-based, as --list numbers them): what cluster jobs call")
	emit := fs.String("emit", "", "write the points as a cluster job instead of running them: kubernetes (Indexed Job) or slurm (job array)")
	output := fs.String("o", "", "--emit: write to this file instead of standard output")
	image := fs.String("image", sweep.DefaultImage, "--emit kubernetes: container image with surgeon and its plugins")
	pvc := fs.String("pvc", sweep.DefaultPVC, "--emit kubernetes: PersistentVolumeClaim for the results")
	mount := fs.String("mount", sweep.DefaultMountPath, "--emit kubernetes: where the results volume is mounted")
	cpus := fs.Int("cpus", 1, "--emit: CPUs per point")
	memory := fs.String("memory", "", "--emit: memory per point, e.g. 4Gi")
	name := fs.String("name", "", "--emit: job name (default surgeon-<sweep folder name>)")
	workdir := fs.String("workdir", "", "--emit: working directory of the points (slurm default: this folder; kubernetes: where a relative RECIPE resolves in the image)")
	binary := fs.String("binary", "", "--emit: the surgeon binary the points run (slurm default: this one, by absolute path; kubernetes: surgeon)")
	cache := fs.String("cache", "", "--emit: SURGEON_CACHE of the points, on storage the nodes share (slurm default: $SURGEON_CACHE, else DIR/.cache; kubernetes: MOUNT/.cache)")
	missing := fs.Bool("missing", false, "--emit: only the points without results that no run is working on (resubmit after failures)")
	expectHash := fs.String("expect-hash", "", "--point: refuse to run unless the recipe has this hash (what emitted jobs pass)")
	indices := fs.String("indices", "", "--point I runs the I-th point of this comma-separated list (what emitted jobs of --missing pass)")
	fs.Var(&env, "env", "--emit: KEY=VALUE environment variable of the points (repeatable)")
	pos, err := parseArgs("sweep", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) == 2 && pos[0] == "report" {
		return sweepReport(stdout, pos[1])
	}
	if len(pos) != 1 {
		return usagef("want exactly one RECIPE (or: report DIR), got %d arguments", len(pos))
	}
	if *missing && *emit == "" {
		return usagef("--missing goes with --emit")
	}
	if *parallel < 1 {
		return usagef("--parallel must be >= 1")
	}
	modes := 0
	for _, on := range []bool{*list, *point >= 0, *emit != ""} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return usagef("--list, --point and --emit exclude each other")
	}
	s, err := sweep.Load(pos[0], sets, *out)
	if err != nil {
		return err
	}
	switch {
	case *list:
		return s.WriteTable(stdout)
	case *emit != "":
		o := sweep.EmitOptions{Out: *out, Parallel: *parallel, CPUs: *cpus, Memory: *memory, Name: *name, WorkDir: *workdir,
			Env: env, Image: *image, PVC: *pvc, MountPath: *mount, Binary: *binary, Cache: *cache}
		if *emit != "kubernetes" && *emit != "k8s" && *emit != "slurm" {
			return usagef("--emit %q: want kubernetes or slurm", *emit)
		}
		inputs, err := sweep.Inputs(s)
		if err != nil {
			return fmt.Errorf("--emit: the jobs would not find their inputs: %w", err)
		}
		if *missing {
			idx, stale := sweep.Missing(s)
			for _, n := range stale {
				fmt.Fprintf(os.Stderr, "surgeon sweep: point %s holds results of a different recipe: left out (remove %s to run it)\n", n, s.PointDir(n))
			}
			if len(idx) == 0 {
				fmt.Fprintf(stdout, "nothing to submit: no point of %s is missing\n", s.Dir)
				return nil
			}
			o.Indices = idx
		}
		var body []byte
		switch *emit {
		case "kubernetes", "k8s":
			body, err = sweep.KubernetesYAML(s, o)
		case "slurm":
			o.Out = s.Dir
			if o.Binary == "" {
				o.Binary = surgeonBinary()
			}
			for _, in := range inputs {
				if m := os.Getenv("SURGEON_HF_MIRROR"); in.Hub && m != "" && !hasEnv(o.Env, "SURGEON_HF_MIRROR") {
					if m, err = filepath.Abs(m); err == nil {
						o.Env = append(o.Env, "SURGEON_HF_MIRROR="+m)
					}
				}
			}
			if err := sweep.Prepare(s); err != nil {
				return err
			}
			var script string
			script, err = sweep.Slurm(s, o)
			body = []byte(script)
		}
		if err != nil {
			return err
		}
		if *output == "" {
			_, err = stdout.Write(body)
			return err
		}
		mode := atomicfs.FilePerm // the umask decides
		if *emit == "slurm" {
			mode = atomicfs.ExecPerm
		}
		if err := os.WriteFile(*output, body, mode); err != nil {
			return err
		}
		if len(o.Indices) > 0 {
			fmt.Fprintf(stdout, "wrote %s: %d of %d points (%s) as a %s job\n", *output, len(o.Indices), len(s.Points), missingNames(s, o.Indices), *emit)
			return nil
		}
		fmt.Fprintf(stdout, "wrote %s: %d points as a %s job\n", *output, len(s.Points), *emit)
		return nil
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the surgeon binary to run points with: %w", err)
	}
	pr := &sweepProgress{w: stdout}
	opts := sweep.Options{Exe: exe, Parallel: *parallel, Progress: pr.event}
	if *point >= 0 {
		i := *point
		if *indices != "" {
			list, err := parseIndices(*indices)
			if err != nil {
				return usagef("--indices: %v", err)
			}
			if i >= len(list) {
				return usagef("--point %d: --indices lists %d points", i, len(list))
			}
			i = list[i]
		}
		opts.Output = stdout
		opts.ExpectHash = *expectHash
		_, err := sweep.RunPoint(ctx, s, i, opts)
		return err
	}
	fmt.Fprintf(stdout, "sweep %s: %d points, %d at a time, in %s\n", s.Recipe, len(s.Points), *parallel, s.Dir)
	start := time.Now()
	_, runErr := sweep.Run(ctx, s, opts)
	var failed *sweep.FailedError
	if runErr != nil && !errors.As(runErr, &failed) && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	fmt.Fprintf(stdout, "sweep took %s\n", time.Since(start).Round(time.Second))
	if err := sweepReport(stdout, s.Dir); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

// surgeonBinary is the surgeon binary emitted Slurm jobs run: this one
// by absolute path (a shared file system), else surgeon on PATH.
func surgeonBinary() string {
	if exe, err := os.Executable(); err == nil && filepath.Base(exe) == "surgeon" {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			return exe
		}
	}
	if p, err := exec.LookPath("surgeon"); err == nil {
		if p, err = filepath.Abs(p); err == nil {
			return p
		}
	}
	return "surgeon"
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// missingNames lists the points of indices: "#0 r=1,seed=1, #3 head".
func missingNames(s *sweep.Sweep, indices []int) string {
	var names []string
	for _, i := range indices {
		names = append(names, fmt.Sprintf("#%d %s", i, s.Points[i].Name))
	}
	return strings.Join(names, ", ")
}

// parseIndices reads "3,5,7".
func parseIndices(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q: want point numbers such as 3,5,7", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// sweepStatus prints the state of every point of a sweep folder.
func sweepStatus(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("sweep status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	pos, err := parseArgs("sweep status", fs, args, stdout)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("sweep status: want one sweep folder, got %d arguments", len(pos))
	}
	st, err := sweep.ReadStatus(pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	fmt.Fprintf(stdout, "sweep %s (recipe %s): %s\n", st.Dir, st.Recipe, st.Summary())
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tpoint\tstate\tattempts\twhen\twhere\tdetail")
	for _, p := range st.Points {
		when, detail := "", ""
		switch {
		case p.End != nil && p.State != sweep.StateRunning:
			when = "ended " + p.End.Local().Format("01-02 15:04:05")
		case p.Start != nil:
			when = "since " + p.Start.Local().Format("01-02 15:04:05")
		}
		where := strings.TrimSpace(p.Job + " " + p.Host)
		if p.State != sweep.StateDone && p.State != sweep.StatePending {
			detail = p.Error
			if p.Log != "" {
				detail = strings.TrimSpace(detail + " (log " + p.Log + ")")
			}
		}
		attempts := ""
		if p.Attempts > 0 {
			attempts = strconv.Itoa(p.Attempts)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Index, p.Name, p.State, attempts, when, where, detail)
	}
	return tw.Flush()
}

// sweepReport writes the report files of the sweep in dir and prints the
// Markdown report.
func sweepReport(stdout io.Writer, dir string) error {
	_, files, err := sweep.WriteReport(dir)
	if err != nil {
		return err
	}
	md, err := os.ReadFile(filepath.Join(dir, sweep.ReportMarkdown))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\nwrote %s (%s)\n", strings.TrimSpace(string(md)), dir, strings.Join(files, ", "))
	return nil
}

// sweepProgress prints one line per point state change.
type sweepProgress struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *sweepProgress) event(e sweep.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	head := fmt.Sprintf("#%d %s", e.Point.Index, e.Point.Name)
	counts := fmt.Sprintf("%d/%d done", e.Done, e.Total)
	if e.Failed > 0 {
		counts += fmt.Sprintf(", %d failed", e.Failed)
	}
	if e.Running > 0 {
		counts += fmt.Sprintf(", %d running", e.Running)
	}
	if e.ETA > 0 {
		counts += ", ETA " + e.ETA.Round(time.Second).String()
	}
	took := e.Elapsed.Round(100 * time.Millisecond)
	switch {
	case e.Skipped && e.State == sweep.StateDone:
		fmt.Fprintf(p.w, "%s: done earlier, skipped\n", head)
	case e.Skipped:
		fmt.Fprintf(p.w, "%s: %s: %s\n", head, e.State, e.Error)
	case e.State == sweep.StateRunning:
		fmt.Fprintf(p.w, "%s: running (%s)\n", head, counts)
	case e.State == sweep.StateDone:
		fmt.Fprintf(p.w, "%s: done in %s (%s)\n", head, took, counts)
	case e.State == sweep.StateInterrupted:
		fmt.Fprintf(p.w, "%s: interrupted after %s; it resumes from its checkpoint on the next run\n", head, took)
	default:
		msg := e.Error
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		fmt.Fprintf(p.w, "%s: %s after %s: %s (%s)\n", head, e.State, took, msg, counts)
	}
}
