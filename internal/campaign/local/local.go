// Package local is the campaign executor for one machine's GPU pool.
package local
