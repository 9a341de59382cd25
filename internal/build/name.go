package build

// ProjectName is the name of the Go project rooted at dir: the last element
// of its module path, skipping a major version suffix (example.com/shop/v2 is
// shop). The built binary is named after it, and so is the deployment.
func ProjectName(dir string) (string, error) {
	m, err := readGoMod(dir)
	if err != nil {
		return "", err
	}
	return pathBase(m.path), nil
}
