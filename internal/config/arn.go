package config

import (
	"fmt"
	"regexp"
	"strings"
)

// LambdaARN is a parsed AWS Lambda function ARN, optionally qualified by a
// version or an alias.
type LambdaARN struct {
	// Partition is "aws", "aws-cn", "aws-us-gov", ...
	Partition string
	Region    string
	// Account is the 12-digit account id.
	Account  string
	Function string
	// Qualifier is a version number, an alias or "$LATEST"; empty when the ARN
	// names the function itself.
	Qualifier string
}

// String returns the ARN in its canonical form.
func (a LambdaARN) String() string {
	s := fmt.Sprintf("arn:%s:lambda:%s:%s:function:%s", a.Partition, a.Region, a.Account, a.Function)
	if a.Qualifier != "" {
		s += ":" + a.Qualifier
	}
	return s
}

// LambdaARNShape is the form ParseLambdaARN accepts, for error and help text.
const LambdaARNShape = "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]"

var (
	partitionRE = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	regionRE    = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	accountRE   = regexp.MustCompile(`^[0-9]{12}$`)
	functionRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	qualifierRE = regexp.MustCompile(`^(\$LATEST|[A-Za-z0-9_-]{1,128})$`)
)

// ARNError reports an ARN that is not a Lambda function ARN. Reason says which
// part is wrong.
type ARNError struct {
	ARN    string
	Reason string
}

// Error says which part of the ARN is wrong and shows the expected shape.
func (e *ARNError) Error() string {
	return fmt.Sprintf("invalid Lambda function ARN %q: %s (want %s)", e.ARN, e.Reason, LambdaARNShape)
}

// ParseLambdaARN parses s, which must have the shape
// arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER].
func ParseLambdaARN(s string) (LambdaARN, error) {
	bad := func(reason string) (LambdaARN, error) {
		return LambdaARN{}, &ARNError{ARN: s, Reason: reason}
	}
	parts := strings.Split(s, ":")
	if len(parts) < 7 || len(parts) > 8 || parts[0] != "arn" {
		return bad("not of the form arn:...:function:NAME")
	}
	a := LambdaARN{Partition: parts[1], Region: parts[3], Account: parts[4], Function: parts[6]}
	if len(parts) == 8 {
		a.Qualifier = parts[7]
		if !qualifierRE.MatchString(a.Qualifier) {
			return bad(fmt.Sprintf("bad qualifier %q", a.Qualifier))
		}
	}
	switch {
	case !partitionRE.MatchString(a.Partition):
		return bad(fmt.Sprintf("bad partition %q", a.Partition))
	case parts[2] != "lambda":
		return bad(fmt.Sprintf("service is %q, not lambda", parts[2]))
	case !regionRE.MatchString(a.Region):
		return bad(fmt.Sprintf("bad region %q", a.Region))
	case !accountRE.MatchString(a.Account):
		return bad(fmt.Sprintf("account %q is not 12 digits", a.Account))
	case parts[5] != "function":
		return bad(fmt.Sprintf("resource type is %q, not function", parts[5]))
	case !functionRE.MatchString(a.Function):
		return bad(fmt.Sprintf("bad function name %q", a.Function))
	}
	return a, nil
}
