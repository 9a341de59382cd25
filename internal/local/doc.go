// Package local runs machines on the embedded local store: Run starts one
// execution and processes it to its end in-process, printing a λ trace as it
// goes; Worker runs a long-lived pool of workers. Both the binary generated
// for a user project (through fsm/host) and the lfsm CLI use it.
package local
