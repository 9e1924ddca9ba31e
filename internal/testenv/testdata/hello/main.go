// Command hello is what the BuildBinary tests build.
package main

import "fmt"

func main() { fmt.Println("hello") }
