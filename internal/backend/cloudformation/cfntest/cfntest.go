// Package cfntest is a fake of CloudFormation's DescribeStacks for tests.
package cfntest

import (
	"fmt"
	"net/http"
	"sync/atomic"
)

// Fake answers DescribeStacks in CloudFormation's query
// protocol (form-encoded POST, XML answer). It is a fake because no
// CloudFormation emulator runs on our machines (docs: EMULATORS.md); it
// decodes what the SDK really sends and refuses anything else.
type Fake struct {
	Stacks map[string]map[string]string
	Calls  atomic.Int64
}

// ServeHTTP answers one DescribeStacks request.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.Calls.Add(1)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "want a form-encoded POST", http.StatusBadRequest)
		return
	}
	if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "DescribeStacks" || r.Form.Get("Version") != "2010-05-15" {
		http.Error(w, "want Action=DescribeStacks&Version=2010-05-15", http.StatusBadRequest)
		return
	}
	if r.Header.Get("Authorization") == "" {
		http.Error(w, "unsigned request", http.StatusForbidden)
		return
	}
	name := r.Form.Get("StackName")
	outs, ok := f.Stacks[name]
	w.Header().Set("Content-Type", "text/xml")
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id %s does not exist</Message></Error><RequestId>r1</RequestId></ErrorResponse>`, name)
		return
	}
	fmt.Fprintf(w, `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>%s</StackName><StackId>arn:aws:cloudformation:us-east-1:123456789012:stack/%s/1</StackId><StackStatus>CREATE_COMPLETE</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime><Outputs>`, name, name)
	for k, v := range outs {
		fmt.Fprintf(w, `<member><OutputKey>%s</OutputKey><OutputValue>%s</OutputValue></member>`, k, v)
	}
	fmt.Fprint(w, `</Outputs></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></DescribeStacksResponse>`)
}
