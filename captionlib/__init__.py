"""captionlib — the reference implementation behind a hands-on "Show, Attend and Tell" course.

The course's notation, one table for every lesson, docstring and shape comment (lesson 00 shows it too):

    Sizes (the letters of every shape comment)
    B  batch size                     T  time steps (caption tokens, <start>/<end> included)
    V  vocabulary size                P  image regions (h*w of the CNN feature map, 49 = 7x7)
    E  encoder feature dim (1280)     M  word embedding dim
    H  LSTM hidden dim                A  attention dim
    S  image side in pixels           K  beam size (also: references per image, in evaluation)

    Symbols
    a_p      region p's feature vector (E,)            v      the pooled image vector (E,)
    y_t      word t of a caption                       x_t    the LSTM's input at step t
    h_t,c_t  the LSTM's hidden and cell state (H,)     i,f,g,o  its input, forget, candidate, output gates
    W_emb    the word embedding matrix (V, M)          W_out  the output layer (H -> V)
    W_h0,W_c0  Show and Tell's initial-state projections of v (E -> H)
    W_f, W_a, w  attention: region projection (E -> A), state projection (H -> A), score vector (A,)
    e_tp, α_tp   attention score and weight of region p at step t;  z_t the context Σ_p α_tp a_p (E,)
    β_t      the gate on the context (Xu et al.)       λ      the weight of the doubly stochastic penalty (alpha_c)
    ε_i      the teacher-forcing probability at update i (scheduled sampling, Bengio et al.)
    γ        the length-normalisation exponent of beam search (length_norm): rank by log p / |y|^γ
    r, b     a sampled caption's reward and its baseline (self-critical training)

Modules, in the order the lessons build them: vocab, shapes, data (lesson 00); images, encoder,
features (01); lstm (02); decoder, train (03); attention (04); beam (05, 06); bleu, evaluate (07);
cider, meteor, scst (08); viz, checks, course (all lessons). Beyond the lessons: distributed (torchrun +
DDP) and finetune (the encoder's last blocks), which `captionlib train` uses on GPUs and several machines.
"""
__version__ = "0.1.0"
