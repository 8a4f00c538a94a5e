//go:build tools

// Package kgosuite only pins franz-go so that `go test github.com/twmb/franz-go/pkg/kgo`
// runs franz-go's own integration tests at that version.
package kgosuite

import _ "github.com/twmb/franz-go/pkg/kgo"
