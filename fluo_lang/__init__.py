"""The FLUO rule language: parser, typed AST, typechecker, IR, compiler and evaluator."""
