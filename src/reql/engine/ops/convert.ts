// convert terms (filled in by its owner).
export {};
