// Package config holds lfsm's typed settings: the schema of lfsm.yaml, the
// deployment target, and the parsing of the AWS identifiers users hand to lfsm
// (Lambda function ARNs).
//
// The package only describes and checks values. Finding and merging them (flag >
// LFSM_* environment variable > lfsm.yaml > default) is the CLI's job, so that
// nothing below internal/cli depends on viper.
package config
