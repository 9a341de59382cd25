package awstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Addr returns the host:port in the environment variable name (REDIS_ADDR,
// MEMCACHED_ADDR: the shared servers ElastiCache's engines are tested on),
// skipping t when it is unset and failing it under CI=true. The address
// must be on 127.0.0.1. Shared servers are shared: never flush or restart
// them (use StartServer for that), and key everything with a prefix of the
// test's own (Name).
func Addr(t testing.TB, name string) string {
	t.Helper()
	addr := os.Getenv(name)
	if addr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set under CI=true: .ci/run starts redis-server and memcached", name)
		}
		t.Skipf("%s not set: start the emulators (eval \"$(scripts/emulators/emu-start.sh)\")", name)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || (host != "127.0.0.1" && host != "localhost") {
		t.Fatalf("%s=%q: tests talk only to servers on 127.0.0.1", name, addr)
	}
	return addr
}

// Server is a server process a test started for itself (StartServer).
type Server struct {
	// Addr is its 127.0.0.1:port.
	Addr string
	bin  string
	args func(port int) []string
	port int
	cmd  *exec.Cmd
}

// StartServer starts bin (found on PATH: redis-server, memcached) on a free
// loopback port, with the arguments args returns for that port, and waits
// until it accepts connections; t's cleanup stops it. Without the binary t
// skips, or fails under CI=true. Use it for tests that flush or restart a
// server.
func StartServer(t testing.TB, bin string, args func(port int) []string) *Server {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not on PATH under CI=true: install it", bin)
		}
		t.Skipf("%s is not on PATH", bin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), bin: path, args: args, port: port}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// Restart stops the server and starts it again on the same port: it comes
// back empty (the tests run it without persistence).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

func (s *Server) start() error {
	s.cmd = exec.Command(s.bin, s.args(s.port)...)
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("%s on %s did not accept connections within 10 s: %w", s.bin, s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port with a deadline
	}
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// RedisArgs are redis-server's arguments for a test server on port: loopback
// only, no persistence (a restart loses everything, as a replaced node does).
func RedisArgs(port int) []string {
	return []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no"}
}

// MemcachedArgs are memcached's arguments for a test server on port.
func MemcachedArgs(port int) []string {
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses to run as root otherwise
	}
	return args
}
