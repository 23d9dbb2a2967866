// The login page: says why we are here.
// Nothing from the query string is put into the page; it only selects one of the fixed messages below.
'use strict';

(function () {
  const MESSAGES = {
    '1': 'Wrong address or password.',
    credentials: 'Wrong address or password.',
    throttled: 'Too many failed attempts. Wait a few minutes, then try again.',
    expired: 'Your session has ended. Please log in again.',
    csrf: 'The form had expired. Please try again.',
  };

  const params = new URLSearchParams(location.search);
  let text = MESSAGES[params.get('error') || ''];
  let kind = 'error';
  if (!text && params.has('logged_out')) {
    text = 'You have logged out.';
    kind = 'info';
  }
  const box = document.getElementById('login-message');
  if (text && box) {
    box.textContent = text;
    box.classList.add(kind);
    box.hidden = false;
  }
  const form = document.getElementById('login-form');
  if (form) {
    form.addEventListener('submit', () => {
      const button = form.querySelector('button[type=submit]');
      if (button) {
        button.disabled = true;
        button.textContent = 'Logging in…';
      }
    });
  }
})();
