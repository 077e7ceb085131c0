// The message box: Enter sends, Shift+Enter starts a new line (and an input method's
// composition is left alone), and the box grows with its text up to a few lines.
export function wireComposer(form: HTMLFormElement, box: HTMLTextAreaElement, submit: () => void): { grow(): void } {
  const grow = () => {
    box.style.height = 'auto';
    box.style.height = `${Math.min(box.scrollHeight + 2, 128)}px`;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    submit();
    grow();
  });
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
      grow();
    }
  });
  box.addEventListener('input', grow);
  return { grow };
}

/** The elements of a room's view that both pages have: the list, its button and notice, the composer. */
export function roomElements() {
  const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  return {
    list: $('messages'),
    jump: $<HTMLButtonElement>('jump'),
    empty: $('empty'),
    compose: $<HTMLFormElement>('compose'),
    body: $<HTMLTextAreaElement>('body'),
    send: $<HTMLButtonElement>('send'),
  };
}
