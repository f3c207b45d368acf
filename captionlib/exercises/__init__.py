"""Reference solutions, known mistakes and check cells for each lesson's exercises.

One module per lesson (`l00`, `l01`, ...). A notebook uses them as

    build_vocab = l00.check_build_vocab(build_vocab)

which prints the verdict and returns the function to go on with.
"""
