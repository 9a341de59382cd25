package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/lfsm/lfsm/fsm"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
	"github.com/lfsm/lfsm/internal/spec"
)

// Config is what a generated main package passes to Main.
type Config struct {
	// Spec is the JSON encoding of the project's loaded *spec.Spec.
	Spec string
	// Actions maps every action reference of the spec to its action.
	Actions map[string]fsm.Action
}

// Exit codes of the binary.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// Main runs the command line of os.Args and exits. On the first SIGINT or
// SIGTERM the steps in flight finish and the program stops; on a second it
// exits at once with status 130.
func Main(cfg Config) {
	if os.Getenv(envRuntimeAPI) != "" {
		// In Lambda: the runtime owns the process (and SIGTERM).
		os.Exit(runLambda(context.Background(), cfg, os.Stdout, os.Stderr))
	}
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		fmt.Fprintln(os.Stderr, "interrupted: finishing the steps in flight (again to abort)")
		cancel()
		<-sigs
		os.Exit(exitInterrupted)
	}()
	if r := parentPipe(); r != nil {
		// lfsm dev died (however: kill -9 sends nothing): stop as on SIGTERM.
		go watchParent(r, func() {
			select {
			case sigs <- syscall.SIGTERM:
			default:
			}
		})
	}
	code := run(ctx, cfg, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

// parentPipe returns the pipe config.ParentPipeEnv names, or nil.
func parentPipe() *os.File {
	fd, err := strconv.Atoi(os.Getenv(config.ParentPipeEnv))
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "parent pipe")
}

// watchParent reads r until it ends (the parent closed it, or died) and then
// calls gone. Nothing is ever written to the pipe.
func watchParent(r io.Reader, gone func()) {
	io.Copy(io.Discard, r)
	gone()
}

// load decodes the compiled-in spec and returns it with the resolver of
// the linked actions.
func load(cfg Config) (*spec.Spec, engine.Resolver, error) {
	var s spec.Spec
	if err := json.Unmarshal([]byte(cfg.Spec), &s); err != nil {
		return nil, nil, fmt.Errorf("decode compiled-in spec: %w", err)
	}
	resolve := func(ref string) (fsm.Action, error) {
		if a, ok := cfg.Actions[ref]; ok && a != nil {
			return a, nil
		}
		return nil, fmt.Errorf("action %q is not linked into this binary (run lfsm build)", ref)
	}
	return &s, resolve, nil
}

// runLambda is Main in Lambda.
func runLambda(ctx context.Context, cfg Config, stdout, stderr io.Writer) int {
	s, resolve, err := load(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	return lambdaMain(ctx, s, resolve, stdout, stderr)
}

// run is Main without the process: it returns the exit code.
func run(ctx context.Context, cfg Config, args []string, stdout, stderr io.Writer) int {
	return runIn(ctx, cfg, args, os.Stdin, stdout, stderr)
}

func runIn(ctx context.Context, cfg Config, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	sp, resolve, err := load(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return exitFailure
	}
	s := *sp
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, &s, resolve, args[1:], stdout, stderr)
	case "worker":
		return workerCmd(ctx, &s, resolve, args[1:], stdout, stderr)
	case "invoke":
		return invokeCmd(ctx, &s, resolve, args[1:], stdin, stdout, stderr)
	case "machines":
		for _, m := range s.Machines {
			fmt.Fprintln(stdout, m.Name)
		}
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	fmt.Fprintf(stderr, "error: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  run -m MACHINE [--context JSON|@FILE] [--correlation-id ID] [--db PATH] [--output text|json] [--chaos SPEC [--chaos-seed N]] [-v] [--log-format text|json]
  worker [--workers N] [--steps all|sampled|none] [--db PATH] [--until-idle] [--visibility DURATION] [--lease-timeout DURATION] [--retention DURATION] [--chaos SPEC [--chaos-seed N]] [-v] [--log-format text|json]
  invoke    (the Lambda handler on events read from stdin; AWS resources from LFSM_AWS_* variables)
  machines
`)
}

// parseContext reads the initial user context: a JSON object, or @FILE.
func parseContext(arg string) (map[string]any, error) {
	if arg == "" {
		return map[string]any{}, nil
	}
	b := []byte(arg)
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		var err error
		if b, err = os.ReadFile(name); err != nil {
			return nil, err
		}
	}
	// Numbers stay json.Number, so their literals reach the messages as
	// they were written (12345678901234567891, 1.0).
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a JSON object: data after the object")
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func machineNames(s *spec.Spec) string {
	names := make([]string, len(s.Machines))
	for i, m := range s.Machines {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}
