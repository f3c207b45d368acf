"""captionlib — the reference implementation behind a hands-on "Show, Attend and Tell" course.

The course's notation, one table for every lesson, docstring and shape comment (lesson 00 shows it too):

    Sizes (the letters of every shape comment)
    B  batch size                     T  time steps (caption tokens, <start>/<end> included)
    V  vocabulary size                P  image regions (h*w of the CNN feature map, 49 = 7x7)
    E  encoder feature dim (1280)     M  word embedding dim
    H  LSTM hidden dim                A  attention dim
    S  image side in pixels           K  captions per image: the beam's, the references, the samples (08)
    N  updates in a training run (scheduled sampling, lesson 05)

    Symbols
    a_p      region p's feature vector (E,)            v      the pooled image vector (E,)
    y_t      word t of a caption                       x_t    the LSTM's input at step t
    h_t,c_t  the LSTM's hidden and cell state (H,)     i,f,g,o  its input, forget, candidate, output gates
    W_emb    the word embedding matrix (V, M)          W_out  the output layer (H -> V)
    W_h0,W_c0  Show and Tell's initial-state projections of v (E -> H)
    W_f, W_h, w  attention: region projection (E -> A), state projection (H -> A), score vector (A,)
    e_tp, α_tp   attention score and weight of region p at step t;  z_t the context Σ_p α_tp a_p (E,)
    β_t      the gate on the context (Xu et al.)       λ      the weight of the doubly stochastic penalty (alpha_c)
    ε_i      the teacher-forcing probability at update i (scheduled sampling, Bengio et al.)
    k        the inverse-sigmoid schedule's constant, in updates (lesson 05)
    γ        the length-normalisation exponent of beam search (length_norm): rank by log p / |y|^γ
    r, b     a sampled caption's reward and its baseline (self-critical training)

Modules, in the order the lessons build them: vocab, shapes, data (lesson 00); images, encoder,
features (01); lstm (02); decoder, train (03); attention (04); beam (05, 06); bleu, evaluate (07);
cider, meteor, scst (08); datasets (09); viz, checks, course (all lessons); grading (graded classes). Beyond the lessons: distributed (torchrun +
DDP) and finetune (the encoder's last blocks), which `captionlib train` uses on GPUs and several machines.
"""
import os
import sys

__version__ = "0.1.0"

# OpenMP's threads sleep while they wait instead of spinning: on a busy machine (a learner's laptop with a browser,
# another notebook, a second run) a spinning thread burns the core its partner needs, and a 2-core run slowed down
# 3-9x where its fair share of the CPU would slow it 1.5-2.5x; sleeping, it slows down like its share (benchmarks/
# RESULTS.md, "Contention"). It costs some speed on an idle machine, in training (about 20% here), not in feature
# extraction. Read when torch loads OpenMP, so only if captionlib comes first; CAPTIONLIB_THREADS=torch keeps
# torch's own default, and an OMP_WAIT_POLICY you set yourself is kept.
if os.environ.get("CAPTIONLIB_THREADS") != "torch" and "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
