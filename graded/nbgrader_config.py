# nbgrader's configuration for the captionlib course (written by `python -m captionlib.course nbgrader`).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = "captionlib"
c.CourseDirectory.root = __import__("os").path.dirname(__file__) or "."
# A cell may load data or a cached model (the checks run in seconds); nbgrader's default is 30 s per cell.
c.Execute.timeout = 600
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
