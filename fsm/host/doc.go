// Package host is the entry point of the binary that lfsm build generates for
// a user project: the generated main package calls Main with the compiled-in
// spec and the project's actions. The binary understands a small command
// line, used by the lfsm CLI:
//
//	run -m MACHINE [--context JSON|@FILE] [--correlation-id ID] [--db PATH] [--output text|json]
//	worker [--workers N] [--db PATH]
//	machines
//
// run starts one execution on the local SQLite store and processes it to its
// end, printing a λ trace; it exits 0 when the execution is done or waits for
// an outside event, 1 when it failed, 2 on a usage error and 130 when
// interrupted. worker handles messages of every machine until SIGINT or
// SIGTERM: the first signal lets the steps in flight finish, a second aborts.
//
// The package is public only because generated code outside this module must
// import it; its API is Config and Main.
package host
