package esm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// RIEBinary is the runtime interface emulator's command name.
const RIEBinary = "aws-lambda-rie"

// FindRIE returns the path of aws-lambda-rie: on PATH, or in $EMU_BIN (where
// scripts/emulators installs it).
func FindRIE() (string, error) {
	if p, err := exec.LookPath(RIEBinary); err == nil {
		return p, nil
	}
	if d := os.Getenv("EMU_BIN"); d != "" {
		p := filepath.Join(d, RIEBinary)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH: install it with go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@latest (scripts/emulators/emu-install.sh does)", RIEBinary)
}

// RIEOptions configure StartRIE.
type RIEOptions struct {
	// RIE is the emulator's path (default FindRIE).
	RIE string
	// Bootstrap is the function's bootstrap (lfsm build --target aws).
	Bootstrap string
	// Env is the function's environment (the process's is not passed on).
	Env []string
	// Timeout is the function timeout (default 60 s).
	Timeout time.Duration
	// Stdout and Stderr receive the emulator's and the function's output.
	Stdout, Stderr io.Writer
}

// RIE is a function running under aws-lambda-rie, bound to 127.0.0.1. It
// serialises invocations: the emulator crashes under concurrent ones.
type RIE struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	http *http.Client
	done chan struct{}
}

// StartRIE starts the emulator with the bootstrap and waits until it
// accepts invocations.
func StartRIE(ctx context.Context, o RIEOptions) (*RIE, error) {
	if o.RIE == "" {
		p, err := FindRIE()
		if err != nil {
			return nil, err
		}
		o.RIE = p
	}
	boot, err := filepath.Abs(o.Bootstrap)
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Minute
	}
	p1, err := freePort()
	if err != nil {
		return nil, err
	}
	p2, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(p1)
	// Never --help: the emulator would take it for the bootstrap's argument
	// and listen on every interface.
	cmd := exec.Command(o.RIE, "--runtime-interface-emulator-address", addr,
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(p2), "--log-level", "error", boot)
	cmd.Env = append([]string{
		"AWS_LAMBDA_FUNCTION_NAME=lfsm", "AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int(o.Timeout/time.Second)),
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
	}, o.Env...)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.RIE, err)
	}
	r := &RIE{cmd: cmd, url: "http://" + addr + "/2015-03-31/functions/function/invocations",
		http: &http.Client{Timeout: o.Timeout + 10*time.Second}, done: make(chan struct{})}
	go func() { cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return r, nil
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("%s exited at start: %v", o.RIE, cmd.ProcessState)
		case <-ctx.Done():
			r.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.Close()
			return nil, fmt.Errorf("%s did not listen on %s within 10 s", o.RIE, addr)
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Invoke posts event to the emulator. The emulator answers a function error
// with 200 and errorType/errorMessage (no X-Amz-Function-Error header), so
// an object with those keys is the error.
func (r *RIE) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(event))
	if err != nil {
		return nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke the function under %s: %w", RIEBinary, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke the function under %s: %w", RIEBinary, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &InvokeError{Type: "HTTP" + strconv.Itoa(resp.StatusCode), Message: string(bytes.TrimSpace(body))}
	}
	var fe InvokeError
	if json.Unmarshal(body, &fe) == nil && fe.Type != "" && fe.Message != "" {
		return nil, &fe
	}
	return body, nil
}

// Close stops the emulator and its function.
func (r *RIE) Close() error {
	if r.cmd.Process != nil {
		r.cmd.Process.Kill()
	}
	<-r.done
	return nil
}

// Process is the project binary's invoke command (the Lambda handler outside
// Lambda) as a long-lived child: events go to its stdin, one answer line
// per event comes back on its stdout.
type Process struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	mu   sync.Mutex
	done chan struct{}
}

// StartProcess starts binary invoke with env added to the process's own.
func StartProcess(binary string, env []string, stderr io.Writer) (*Process, error) {
	cmd := exec.Command(binary, "invoke")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = stderr
	dieWithParent(cmd)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s invoke: %w", binary, err)
	}
	p := &Process{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20), done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// Invoke writes event and reads its answer.
func (p *Process) Invoke(ctx context.Context, event []byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := p.in.Write(append(bytes.TrimSpace(event), '\n')); err != nil {
		return nil, fmt.Errorf("invoke: the project binary is gone: %w", err)
	}
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("invoke: the project binary is gone: %w", err)
	}
	var a struct {
		Response json.RawMessage `json:"response"`
		Error    *InvokeError    `json:"error"`
	}
	if err := json.Unmarshal(line, &a); err != nil {
		return nil, fmt.Errorf("invoke: bad answer from the project binary: %w", err)
	}
	if a.Error != nil {
		return nil, a.Error
	}
	return a.Response, nil
}

// Close ends the child (end of input, then a kill if it lingers).
func (p *Process) Close() error {
	p.in.Close()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	if s := p.cmd.ProcessState; s != nil && !s.Success() {
		return errors.New("project binary: " + s.String())
	}
	return nil
}
