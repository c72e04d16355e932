"""Symmetry reductions and the saddle-point equations of specific papers.

``single_index``: a teacher-student task reduced to the teacher's direction; ``modular``: modular addition in
its Fourier modes; ``rubin``: the d -> infinity saddle of the teacher-student paper.
"""
