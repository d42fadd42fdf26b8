module github.com/lazaret/lazaret

go 1.26.8
