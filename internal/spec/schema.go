package spec

import _ "embed"

//go:embed schema.json
var schema []byte

// Schema returns the JSON Schema (draft 2020-12) of the fsm.yaml format, for
// editors: yaml-language-server reads it to complete keys and flag typos. The
// schema checks shape only; Validate checks the rest.
func Schema() []byte {
	return append([]byte(nil), schema...)
}
