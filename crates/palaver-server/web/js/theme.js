// Light and dark: the system's choice (prefers-color-scheme) unless this browser chose
// one in the theme menu, kept in localStorage. The stylesheet reads `data-theme` on
// <html> ("light" or "dark"; absent: follow the system).

const THEME_KEY = 'palaver.theme';
const CHOICES = ['system', 'light', 'dark'];

/** The saved choice: 'system', 'light' or 'dark'. */
export function themeChoice() {
  let v = null;
  try {
    v = localStorage.getItem(THEME_KEY);
  } catch {
    // storage refused (private mode): follow the system
  }
  return CHOICES.includes(v) ? v : 'system';
}

/** Saves and applies `choice` ('system', 'light' or 'dark'). */
export function setTheme(choice) {
  try {
    if (choice === 'system') localStorage.removeItem(THEME_KEY);
    else localStorage.setItem(THEME_KEY, choice);
  } catch {
    // not saved; applied for this page
  }
  apply(choice);
}

function apply(choice) {
  const root = document.documentElement;
  if (choice === 'system') delete root.dataset.theme;
  else root.dataset.theme = choice;
  for (const sel of document.querySelectorAll('[data-theme-select]')) sel.value = choice;
}

/** Applies the saved choice and wires every `<select data-theme-select>` to it. */
export function initTheme() {
  apply(themeChoice());
  for (const sel of document.querySelectorAll('[data-theme-select]')) {
    sel.addEventListener('change', () => setTheme(sel.value));
  }
  // Another tab changed it.
  window.addEventListener('storage', (e) => {
    if (e.key === THEME_KEY) apply(themeChoice());
  });
}
