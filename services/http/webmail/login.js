// The login page: fills the CSRF field when the server left it to a cookie, and says why we are here.
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

  function cookie(name) {
    for (const part of document.cookie.split(';')) {
      const [key, ...rest] = part.trim().split('=');
      if (key === name) return decodeURIComponent(rest.join('='));
    }
    return '';
  }

  const field = document.getElementById('login-csrf');
  if (field && (field.value === '' || field.value.includes('{{'))) {
    field.value = cookie('mailbus_login_csrf');
  }

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
