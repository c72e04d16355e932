"""``python -m experiments.teacher_student``."""

from experiments.teacher_student.run import main

if __name__ == "__main__":
    main()
