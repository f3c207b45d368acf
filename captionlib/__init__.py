"""captionlib — the reference implementation behind a hands-on "Show, Attend and Tell" course.

Key to the letters in every shape comment and docstring:

    B  batch size                     T  time steps (caption tokens, <start>/<end> included)
    V  vocabulary size                P  image regions (h*w of the CNN feature map, 49 = 7x7)
    E  encoder feature dim (1280)     M  word embedding dim
    H  LSTM hidden dim                A  attention dim
    S  image side in pixels           K  beam size

Modules, in the order the lessons build them: vocab, shapes, data (lesson 00); images, encoder,
features (01); lstm (02); decoder, train (03); attention (04); beam, bleu (06, 07); viz, checks,
course (all lessons). Beyond the lessons: distributed (torchrun + DDP) and finetune (the encoder's
last blocks), which `captionlib train` uses on GPUs and several machines (README).
"""
__version__ = "0.1.0"
