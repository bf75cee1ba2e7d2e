package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/surgeon-ml/surgeon/internal/atomicfs"
	"github.com/surgeon-ml/surgeon/surgery/sweep"
)

func init() {
	register("sweep", command{
		usage: "sweep RECIPE.toml [--set key=value ...] [--parallel N] [--out DIR] [--list | --point I | --emit kubernetes|slurm]\n       surgeon sweep report DIR\n       surgeon sweep ranks DIR [--from POINT]",
		short: "run the points of a recipe's [sweep] (ranks, seeds, baselines) and report them in a table and plots",
		run:   runSweep,
	})
}

func runSweep(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "ranks" {
		return runRankSweep(ctx, args[1:], stdout)
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
	workdir := fs.String("workdir", "", "--emit: working directory of the points (where RECIPE resolves)")
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
			Env: env, Image: *image, PVC: *pvc, MountPath: *mount}
		var body []byte
		switch *emit {
		case "kubernetes", "k8s":
			body, err = sweep.KubernetesYAML(s, o)
		case "slurm":
			var script string
			script, err = sweep.Slurm(s, o)
			body = []byte(script)
		default:
			return usagef("--emit %q: want kubernetes or slurm", *emit)
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
		opts.Output = stdout
		_, err := sweep.RunPoint(ctx, s, *point, opts)
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
